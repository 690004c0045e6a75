"""Preflight ignore lists: kubeadm's rules, and the test bed's narrowest lists."""

import pytest

from kubeadm import preflight
from kubeadm.errors import ConfigError


def test_testbed_lists_are_the_recorded_ones():
    assert preflight.TESTBED_INIT == (
        "CRI",
        "ContainerRuntimeVersion",
        "ImagePull",
        "SystemVerification",
        "FileContent--proc-sys-net-ipv4-ip_forward",
    )
    # a worker pulls no control-plane images
    assert set(preflight.TESTBED_INIT) - set(preflight.TESTBED_JOIN_WORKER) == {"ImagePull"}
    assert preflight.testbed_ignore_preflight_errors("control-plane") == preflight.TESTBED_INIT
    assert "all" not in {n.lower() for n in preflight.TESTBED_INIT + preflight.TESTBED_UPGRADE}
    with pytest.raises(ConfigError, match="worker"):
        preflight.testbed_ignore_preflight_errors("laptop")


def test_normalize_keeps_first_spelling_and_refuses_all_with_others():
    assert preflight.normalize_ignore_list(["Swap", "swap", " CRI "]) == ["Swap", "CRI"]
    assert preflight.normalize_ignore_list(["all", "ALL"]) == ["all"]
    with pytest.raises(ConfigError, match="'all' alone"):
        preflight.normalize_ignore_list(["all", "Swap"])
    for bad in ("Swap,CRI", "Port 6443", "", None):
        with pytest.raises(ConfigError):
            preflight.normalize_ignore_list([bad])


def test_ignore_flag():
    assert preflight.ignore_flag([]) == []
    assert preflight.ignore_flag(["CRI", "ImagePull"]) == ["--ignore-preflight-errors=CRI,ImagePull"]

"""The test bed's preflight ignore lists (tools/testbed/preflight.py): test-bed data, never read
by the product. tests/e2e/test_kubeadm_phases.py proves each is the narrowest that passes."""

import pytest

from kubeadm.errors import ConfigError
from tools.testbed import preflight


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

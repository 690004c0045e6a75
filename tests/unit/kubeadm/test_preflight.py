"""Preflight ignore lists: kubeadm's rules (one home: kubeadm/preflight.py)."""

import pytest

from kubeadm import preflight
from kubeadm.errors import ConfigError


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


def test_a_list_a_person_writes_is_refused_with_the_reason():
    assert preflight.ignore_list_problem(["FileAvailable--etc-kubernetes-manifests-etcd.yaml", "NumCPU"]) is None
    assert preflight.ignore_list_problem(["all"]) is None
    assert preflight.ignore_list_problem("CRI") == "The preflight ignore list must be a list of check names."
    assert preflight.ignore_list_problem(["rm -rf"]).startswith("Not a kubeadm preflight check name: 'rm -rf'")
    assert preflight.ignore_list_problem(["all", "CRI"]).startswith("'all' already ignores every check")
    assert preflight.ignore_list_problem(["CRI", "cri"]) == "Listed twice: CRI, cri."


def test_the_list_of_a_run_merges_its_sources_and_all_wins():
    assert preflight.merge_ignore_lists(["CRI", "Swap"], ["swap", "NumCPU"], None) == ["CRI", "Swap", "NumCPU"]
    assert preflight.merge_ignore_lists(["CRI"], ["ALL"], ["CreateJob"]) == ["all"]
    assert preflight.merge_ignore_lists([], None) == []
    # what a run uses is always a list kubeadm takes as it is
    assert preflight.normalize_ignore_list(preflight.merge_ignore_lists(["CRI"], ["all"])) == ["all"]


def test_a_typed_list_is_split_on_commas_and_whitespace():
    assert preflight.parse_check_list("CRI, ImagePull\nPort-6443") == ["CRI", "ImagePull", "Port-6443"]
    assert preflight.parse_check_list("") == []

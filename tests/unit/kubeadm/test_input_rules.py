"""The rules forms apply to what a person types: versions offered and resolved, the cluster name,
an endpoint with a scheme. One place (kubeadm/) says them; forms and the model call it."""

import pytest

from kubeadm.config import default_cluster_configuration
from kubeadm.errors import UnsupportedVersionError
from kubeadm.validation import CLUSTER_NAME_RULE, validate_cluster_configuration, validate_cluster_name
from kubeadm.versions import (
    DEFAULT_KUBERNETES_VERSION,
    NEWEST_PATCHES,
    SUPPORTED_VERSIONS,
    offered_versions,
    parse_version,
    resolve_version,
)


def test_every_supported_minor_has_its_newest_patch_offered_newest_first():
    assert sorted(NEWEST_PATCHES) == sorted(SUPPORTED_VERSIONS)
    offered = offered_versions()
    assert offered[0] == DEFAULT_KUBERNETES_VERSION
    assert [parse_version(v)[1] for v in offered] == sorted((parse_version(v)[1] for v in offered), reverse=True)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("1.37", "v1.37.2"),
        ("v1.37", "v1.37.2"),
        ("stable-1.36", "v1.36.3"),
        (" 1.35 ", NEWEST_PATCHES["1.35"]),
        ("1.36.1", "v1.36.1"),
        ("v1.37.2", "v1.37.2"),
    ],
)
def test_a_minor_means_its_newest_patch(typed, stored):
    assert resolve_version(typed) == stored


@pytest.mark.parametrize("typed", ["1.34", "v1.20.0", "banana", "", "stable-1.30", "latest"])
def test_refusals_suggest_only_supported_versions(typed):
    with pytest.raises(UnsupportedVersionError) as err:
        resolve_version(typed)
    message = str(err.value)
    for version in offered_versions():
        assert version in message
    assert "1.34.2" not in message and "v1.20" not in message.split("found")[0]


def test_malformed_version_example_is_a_supported_version():
    with pytest.raises(UnsupportedVersionError) as err:
        parse_version("banana")
    assert DEFAULT_KUBERNETES_VERSION in str(err.value) and "1.34" not in str(err.value)


@pytest.mark.parametrize("name", ["Prod_EU", "prod.eu", "-lead", "trail-", "x" * 64, ""])
def test_cluster_name_is_a_dns_label_with_one_message(name):
    [error] = validate_cluster_name(name)
    assert error.expected == CLUSTER_NAME_RULE
    config = default_cluster_configuration()
    config.cluster_name = name
    assert [str(e) for e in validate_cluster_configuration(config) if e.field == "clusterName"] == [str(error)]


@pytest.mark.parametrize("name", ["prod-eu1", "a", "x" * 63, "kubernetes"])
def test_good_cluster_names(name):
    assert validate_cluster_name(name) == []


@pytest.mark.parametrize("endpoint", ["http://x", "https://10.0.0.10:6443", "tcp://lb.example.com"])
def test_an_endpoint_with_a_scheme_says_so(endpoint):
    config = default_cluster_configuration()
    config.control_plane_endpoint = endpoint
    [error] = [e for e in validate_cluster_configuration(config) if e.field == "controlPlaneEndpoint"]
    assert "a scheme is not allowed; use host or host:port, e.g. 10.0.0.10:6443" in str(error)
    assert "must be a valid number" not in str(error)

"""Defaults, render/parse round trip and validation of the v1beta4 config."""

from datetime import timedelta
from pathlib import Path

import pytest

from kubeadm import config
from kubeadm.config import (
    default_cluster_configuration,
    default_init_configuration,
    parse_config,
    render_init_config,
    validate_cluster_configuration,
)
from kubeadm.errors import ConfigError, YAMLFormatError

DATA = Path(__file__).parent / "data"


def test_init_defaults_render_byte_for_byte_like_kubeadm_1_34():
    # kubeadm prints its own version without the "v" in init-defaults.
    rendered = render_init_config(default_init_configuration(), default_cluster_configuration("1.34.0"))
    assert rendered == (DATA / "init-defaults-1.34.yaml").read_text()


def test_render_parse_round_trip():
    init = default_init_configuration(
        advertise_address="192.168.0.101", node_name="cp1", token="abcdef.0123456789abcdef"
    )
    cluster = default_cluster_configuration()
    cluster.networking.pod_subnet = "10.244.0.0/16"
    cluster.control_plane_endpoint = "cp.example.com:6443"
    cluster.controller_manager.extra_args = [config.Arg("cluster-signing-duration", "24h")]
    cluster.api_server.cert_sans = ["10.0.0.1", "*.example.com"]
    init.node_registration.taints = []
    parsed = parse_config(render_init_config(init, cluster))
    assert parsed.init == init
    assert parsed.cluster == cluster
    assert parsed.unknown_fields == []


def test_unknown_fields_are_reported_not_dropped():
    text = """apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
  podCIDR: 10.0.0.0/8
colour: blue
"""
    parsed = parse_config(text)
    assert parsed.cluster.networking.pod_subnet == "10.244.0.0/16"
    assert sorted(parsed.unknown_fields) == ["colour", "networking.podCIDR"]


def test_default_cluster_configuration_is_valid():
    assert validate_cluster_configuration(default_cluster_configuration()) == []


@pytest.mark.parametrize(
    ("attr", "value", "field"),
    [
        ("networking.service_subnet", "10.96.0.0/29", "networking.serviceSubnet"),
        ("networking.service_subnet", "10.0.0.0/8", "networking.serviceSubnet"),
        ("networking.service_subnet", "10.96.0.0/33", "networking.serviceSubnet"),
        ("networking.pod_subnet", "10.96.0.0/16", "networking.podSubnet"),
        ("networking.pod_subnet", "10.244.0.0/25", "networking.podSubnet"),
        ("networking.dns_domain", "Cluster_Local", "networking.dnsDomain"),
        ("control_plane_endpoint", "fd00::1:6443:x", "controlPlaneEndpoint"),
        ("control_plane_endpoint", "lb.example.com:99999", "controlPlaneEndpoint"),
        ("cluster_name", "My Cluster", "clusterName"),
        ("kubernetes_version", "v1.20.0", "kubernetesVersion"),
        ("image_repository", "Registry Example/x", "imageRepository"),
        ("encryption_algorithm", "DSA-1024", "encryptionAlgorithm"),
        ("certificate_validity_period", timedelta(0), "certificateValidityPeriod"),
        ("certificates_dir", "relative/pki", "certificatesDir"),
    ],
)
def test_validation_names_the_field(attr, value, field):
    cluster = default_cluster_configuration()
    target = cluster
    *parents, leaf = attr.split(".")
    for p in parents:
        target = getattr(target, p)
    setattr(target, leaf, value)
    errors = validate_cluster_configuration(cluster)
    assert [e.field for e in errors] == [field], errors
    assert isinstance(errors[0], ConfigError)
    assert field in str(errors[0]) and "expected" in str(errors[0]) and "found" in str(errors[0])


@pytest.mark.parametrize("endpoint", ["10.0.0.1", "10.0.0.1:6443", "[fd00::1]:6443", "fd00::1", "lb.example.com"])
def test_valid_control_plane_endpoints(endpoint):
    cluster = default_cluster_configuration()
    cluster.control_plane_endpoint = endpoint
    assert validate_cluster_configuration(cluster) == []


def test_dual_stack_subnets_are_accepted_and_same_family_pairs_rejected():
    cluster = default_cluster_configuration()
    cluster.networking.service_subnet = "10.96.0.0/16,fd00:10:96::/112"
    cluster.networking.pod_subnet = "10.244.0.0/16,fd00:10:244::/56"
    assert validate_cluster_configuration(cluster) == []
    cluster.networking.pod_subnet = "10.244.0.0/16,10.245.0.0/16"
    assert [e.field for e in validate_cluster_configuration(cluster)] == ["networking.podSubnet"]


def test_wrong_type_and_bad_yaml_raise_precise_errors():
    with pytest.raises(ConfigError) as err:
        parse_config(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: abc\n"
        )
    assert err.value.field == "localAPIEndpoint.bindPort"
    with pytest.raises(YAMLFormatError, match="line"):
        parse_config("kind: [unclosed\n")
    with pytest.raises(YAMLFormatError, match="v1beta4"):
        parse_config("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n")


def test_token_in_a_config_error_is_redacted():
    init = default_init_configuration(token="abcdef.0123456789abcdef")
    init.bootstrap_tokens[0].token = "abcdef.0123456789abcdeX"
    errors = config.validate_init_configuration(init)
    assert [e.field for e in errors] == ["bootstrapTokens[0].token"]
    assert "0123456789abcde" not in str(errors[0])


REAL = DATA / "real-v1.37.2"


def test_init_defaults_match_real_kubeadm_1_37_2():
    rendered = render_init_config(default_init_configuration(), default_cluster_configuration("1.37.0"))
    assert rendered == (REAL / "init-defaults.yaml").read_text()


def test_join_defaults_match_real_kubeadm_1_37_2():
    # kubeadm fills nodeRegistration.name with the host name ("vm" where it ran).
    rendered = config.render_join_config(config.default_join_configuration(node_name="vm"))
    assert rendered == (REAL / "join-defaults.yaml").read_text()
    parsed = parse_config(rendered)
    assert parsed.join == config.default_join_configuration(node_name="vm")
    assert config.validate_join_configuration(parsed.join) == []


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\ncertificateKey: [topsecretvalue]\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  tlsBootstrapToken: {a: topsecretvalue}\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: [topsecretvalue]\n",
    ],
)
def test_secret_fields_never_appear_in_parse_errors(text):
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert "topsecretvalue" not in str(err.value) and "redacted" in str(err.value)

"""Node-level kubeadm configs and the CA files Kubeboard uploads (used for real by
tests/e2e/test_kubeadm_phases.py); here: content, validation and modes."""

import pytest

from kubeadm import config, nodeconfig, pki, tokens, uploads
from kubeadm.errors import CertificateError, CertificateKeyError, ConfigError, TokenFormatError

TOKEN = "k8sbrd.0123456789abcdef"
PIN = "sha256:" + "ab" * 32
KEY = "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def authorities():
    return pki.generate_cluster_authorities("ECDSA-P256")


def _cluster():
    cluster = config.default_cluster_configuration("v1.37.2")
    cluster.control_plane_endpoint = "10.0.0.11:6443"
    return cluster


def test_init_config_carries_node_values_and_our_token():
    text = nodeconfig.init_config_for_node(
        _cluster(),
        node_name="cp1",
        advertise_address="10.0.0.11",
        bootstrap_tokens=[TOKEN],
        cri_socket="unix:///run/containerd/containerd.sock",
        ignore_preflight_errors=["CRI", "cri", "ImagePull"],
        certificate_key=KEY,
    )
    parsed = config.parse_config(text)
    init, cluster = parsed.init, parsed.cluster
    assert not parsed.unknown_fields
    assert init.local_api_endpoint.advertise_address == "10.0.0.11" and init.local_api_endpoint.bind_port == 6443
    assert init.node_registration.name == "cp1"
    assert init.node_registration.cri_socket == "unix:///run/containerd/containerd.sock"
    assert init.node_registration.ignore_preflight_errors == ["CRI", "ImagePull"]
    assert [t.token for t in init.bootstrap_tokens] == [TOKEN]
    assert init.bootstrap_tokens[0].groups == ["system:bootstrappers:kubeadm:default-node-token"]
    assert init.certificate_key == KEY
    assert cluster.control_plane_endpoint == "10.0.0.11:6443" and cluster.kubernetes_version == "v1.37.2"
    assert config.PLACEHOLDER_TOKEN not in text and "1.2.3.4" not in text


def test_init_config_accepts_bootstrap_token_objects_and_no_token():
    expiring = config.BootstrapToken(
        token=TOKEN,
        description="init",
        ttl=None,
        usages=["signing"],
        groups=["system:bootstrappers:kubeadm:default-node-token"],
    )
    text = nodeconfig.init_config_for_node(
        _cluster(), node_name="cp1", advertise_address="10.0.0.11", bootstrap_tokens=[expiring]
    )
    assert config.parse_config(text).init.bootstrap_tokens[0].description == "init"
    text = nodeconfig.init_config_for_node(
        _cluster(), node_name="cp1", advertise_address="10.0.0.11", bootstrap_tokens=[]
    )
    assert "bootstrapTokens" not in text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"node_name": "node"}, "nodeRegistration.name"),
        ({"node_name": "CP_1"}, "nodeRegistration.name"),
        ({"advertise_address": "1.2.3.4"}, "advertiseAddress"),
        ({"advertise_address": "cp1.example.com"}, "advertiseAddress"),
        ({"bootstrap_tokens": [config.PLACEHOLDER_TOKEN]}, "bootstrapTokens[0].token"),
        ({"ignore_preflight_errors": ["all", "Swap"]}, "ignorePreflightErrors"),
    ],
)
def test_init_config_refuses_placeholders_and_bad_values(kwargs, field):
    args = {"node_name": "cp1", "advertise_address": "10.0.0.11", "bootstrap_tokens": [TOKEN], **kwargs}
    with pytest.raises(ConfigError) as err:
        nodeconfig.init_config_for_node(_cluster(), **args)
    assert field in err.value.field
    assert "0123456789abcdef" not in str(err.value)


def test_init_config_needs_an_explicit_version():
    cluster = _cluster()
    cluster.kubernetes_version = ""
    with pytest.raises(ConfigError, match="dl.k8s.io"):
        nodeconfig.init_config_for_node(
            cluster, node_name="cp1", advertise_address="10.0.0.11", bootstrap_tokens=[TOKEN]
        )


def test_worker_join_config():
    text = nodeconfig.join_config_for_node(
        api_server_endpoint="10.0.0.11:6443",
        token=tokens.parse_token(TOKEN),
        ca_cert_hashes=[PIN.upper().replace("SHA256", "sha256")],
        node_name="w1",
        ignore_preflight_errors=["Swap"],
    )
    join = config.parse_config(text).join
    assert join.discovery.bootstrap_token.api_server_endpoint == "10.0.0.11:6443"
    assert join.discovery.bootstrap_token.token == TOKEN and join.discovery.tls_bootstrap_token == TOKEN
    assert join.discovery.bootstrap_token.ca_cert_hashes == [PIN]
    assert join.discovery.bootstrap_token.unsafe_skip_ca_verification is False
    assert join.node_registration.name == "w1" and join.node_registration.ignore_preflight_errors == ["Swap"]
    assert join.control_plane is None


def test_control_plane_join_config_both_ways():
    upload = config.parse_config(
        nodeconfig.join_config_for_node(
            api_server_endpoint="cp.example.com:6443",
            token=TOKEN,
            ca_cert_hashes=[PIN],
            node_name="cp2",
            control_plane_address="10.0.0.12",
            certificate_key=KEY,
        )
    ).join
    assert upload.control_plane.local_api_endpoint.advertise_address == "10.0.0.12"
    assert upload.control_plane.local_api_endpoint.bind_port == 6443
    assert upload.control_plane.certificate_key == KEY
    seeded = config.parse_config(
        nodeconfig.join_config_for_node(
            api_server_endpoint="cp.example.com:6443",
            token=TOKEN,
            ca_cert_hashes=[PIN],
            node_name="cp3",
            control_plane_address="10.0.0.13",
        )
    ).join
    assert seeded.control_plane.certificate_key == ""


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ca_cert_hashes": []}, ConfigError, "unsafeSkipCAVerification"),
        ({"api_server_endpoint": "10.0.0.11"}, ConfigError, "with the port"),
        ({"api_server_endpoint": "bad host:6443"}, ConfigError, "apiServerEndpoint"),
        ({"token": "short"}, TokenFormatError, "token"),
        ({"certificate_key": KEY}, ConfigError, "worker"),
        ({"control_plane_address": "1.2.3.4"}, ConfigError, "advertiseAddress"),
        ({"control_plane_address": "10.0.0.12", "certificate_key": "abc"}, CertificateKeyError, "64 hexadecimal"),
    ],
)
def test_join_config_refuses_bad_input(kwargs, error, match):
    args = {
        "api_server_endpoint": "10.0.0.11:6443",
        "token": TOKEN,
        "ca_cert_hashes": [PIN],
        "node_name": "w1",
        **kwargs,
    }
    with pytest.raises(error, match=match):
        nodeconfig.join_config_for_node(**args)


def test_init_upload_files_paths_modes_and_content(authorities):
    files = {f.path: f for f in uploads.init_upload_files(authorities)}
    assert {p: oct(f.mode) for p, f in files.items()} == {
        "/etc/kubernetes/pki/ca.crt": "0o644",
        "/etc/kubernetes/pki/ca.key": "0o600",
        "/etc/kubernetes/pki/front-proxy-ca.crt": "0o644",
        "/etc/kubernetes/pki/front-proxy-ca.key": "0o600",
        "/etc/kubernetes/pki/etcd/ca.crt": "0o644",
        "/etc/kubernetes/pki/etcd/ca.key": "0o600",
        "/etc/kubernetes/pki/sa.pub": "0o600",
        "/etc/kubernetes/pki/sa.key": "0o600",
    }
    assert files["/etc/kubernetes/pki/ca.crt"].data == authorities["ca"].cert_pem()
    assert files["/etc/kubernetes/pki/sa.pub"].data == authorities["sa"].public_key_pem()
    assert "BEGIN" not in repr(files["/etc/kubernetes/pki/ca.key"])


def test_shared_files_from_pems_with_download_certs_modes(authorities):
    pems = {
        name: ((pair.cert_pem() if pair.cert is not None else pair.public_key_pem()).decode(), pair.key_pem())
        for name, pair in authorities.items()
    }
    files = {f.path: f.mode for f in uploads.control_plane_shared_files(pems)}
    assert files["/etc/kubernetes/pki/sa.pub"] == 0o644 and files["/etc/kubernetes/pki/sa.key"] == 0o600
    assert len(files) == 8
    external = uploads.control_plane_shared_files(
        {k: v for k, v in pems.items() if k != "etcd/ca"}, external_etcd=True, certificates_dir="/srv/pki/"
    )
    assert sorted(f.path for f in external)[0] == "/srv/pki/ca.crt" and len(external) == 6


def test_uploads_refuse_missing_or_mismatched_material(authorities):
    with pytest.raises(CertificateError, match="missing etcd/ca"):
        uploads.init_upload_files({k: v for k, v in authorities.items() if k != "etcd/ca"})
    other = pki.generate_cluster_authorities("ECDSA-P256")
    mixed = dict(authorities, ca=(authorities["ca"].cert_pem(), other["ca"].key_pem()))
    with pytest.raises((CertificateError, pki.PrivateKeyError), match="ca"):
        uploads.init_upload_files(mixed)
    wrong_sa = dict(authorities, sa=(other["sa"].public_key_pem(), authorities["sa"].key_pem()))
    with pytest.raises(CertificateError, match="does not belong"):
        uploads.control_plane_shared_files(wrong_sa)


def test_timeouts_override_only_what_is_given():
    from datetime import timedelta

    join = config.parse_config(
        nodeconfig.join_config_for_node(
            api_server_endpoint="10.0.0.11:6443",
            token=TOKEN,
            ca_cert_hashes=[PIN],
            node_name="w1",
            timeouts=config.Timeouts(discovery=timedelta(seconds=15)),
        )
    ).join
    assert join.timeouts.discovery == timedelta(seconds=15)
    assert join.timeouts.tls_bootstrap == timedelta(minutes=5)

"""kubeconfig files, join commands and upload-certs encryption."""

import base64
import datetime
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kubeadm import certkeys, join, kubeconfig, pki, tokens
from kubeadm.config import default_cluster_configuration, default_init_configuration
from kubeadm.discovery import ca_pin_hash
from kubeadm.errors import CertificateKeyError, KubeconfigError, PinError, TokenFormatError

REAL = Path(__file__).parent / "data" / "real-v1.37.2"
NOW = datetime.datetime(2026, 11, 26, 23, 42, 2, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def setup():
    init = default_init_configuration(advertise_address="192.168.0.101", node_name="cp1")
    cluster = default_cluster_configuration()
    cluster.control_plane_endpoint = "cp.example.com"
    cluster.encryption_algorithm = "ECDSA-P256"
    real_ca = pki.load_key_pair((REAL / "pki/ca.crt").read_bytes(), (REAL / "pki/ca.key").read_bytes())
    return init, cluster, real_ca, kubeconfig.generate_kubeconfigs(init, cluster, real_ca, now=NOW)


def _mask(text: str) -> str:
    return re.sub(r"(-data: )\S+", r"\1<data>", text)


@pytest.mark.parametrize("name", ["admin.conf", "kubelet.conf", "scheduler.conf"])
def test_kubeconfig_text_matches_kubeadm_apart_from_key_material(setup, name):
    *_, files = setup
    assert _mask(files[name]) == _mask((REAL / "kubeconfig" / name).read_text())


@pytest.mark.parametrize(
    ("name", "cn", "orgs"),
    [
        ("admin.conf", "kubernetes-admin", ["kubeadm:cluster-admins"]),
        ("super-admin.conf", "kubernetes-super-admin", ["system:masters"]),
        ("kubelet.conf", "system:node:cp1", ["system:nodes"]),
        ("controller-manager.conf", "system:kube-controller-manager", []),
        ("scheduler.conf", "system:kube-scheduler", []),
    ],
)
def test_client_certificates_like_kubeadm(setup, name, cn, orgs):
    *_, real_ca, files = setup
    config = kubeconfig.parse_kubeconfig(files[name])
    pair = kubeconfig.client_key_pair(config)
    assert pki.common_name(pair.cert) == cn and pki.organizations(pair.cert) == orgs
    assert pki.extended_key_usages(pair.cert) == ["clientAuth"]
    assert pair.cert.not_valid_before_utc == real_ca.cert.not_valid_before_utc
    pki.verify_signed_by(pair.cert, real_ca.cert)
    assert kubeconfig.ca_certificates(config) == [real_ca.cert]


def test_real_admin_conf_reads_back():
    config = kubeconfig.parse_kubeconfig((REAL / "kubeconfig/admin.conf").read_text())
    assert kubeconfig.server_of(config) == "https://cp.example.com:6443"
    assert pki.common_name(kubeconfig.client_certificate(config)) == "kubernetes-admin"


def test_renew_admin_conf_replaces_only_credentials(setup):
    *_, real_ca, files = setup
    config = kubeconfig.parse_kubeconfig(files["admin.conf"])
    new_client = kubeconfig.issue_client(
        real_ca, "kubernetes-admin", ("kubeadm:cluster-admins",), algorithm="ECDSA-P256"
    )
    renewed = kubeconfig.replace_client(config, new_client)
    assert kubeconfig.client_certificate(renewed) == new_client.cert
    assert _mask(kubeconfig.render_kubeconfig(renewed)) == _mask(files["admin.conf"])


def test_cluster_info_kubeconfig_and_its_jws(setup):
    *_, real_ca, _ = setup
    text = kubeconfig.cluster_info_kubeconfig("https://192.168.0.101:6443", real_ca.cert)
    assert '  name: ""\ncontexts: null\ncurrent-context: ""\nkind: Config\nusers: null\n' in text
    signature = tokens.compute_detached_jws(text, "abcdef", "0123456789abcdef")
    tokens.verify_detached_jws(signature, text, "abcdef", "0123456789abcdef")


def test_missing_context_is_a_kubeconfig_error():
    with pytest.raises(KubeconfigError, match="current-context"):
        kubeconfig.server_of({"kind": "Config", "current-context": "x", "contexts": []})


# --- join commands --------------------------------------------------------------

PIN = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3"


def test_worker_join_command_is_kubeadms_template():
    line = join.worker_join_command("https://cp.example.com:6443", "abcdef.0123456789abcdef", [PIN])
    assert line == (
        "kubeadm join cp.example.com:6443 --token abcdef.0123456789abcdef \\\n"
        f"    --discovery-token-ca-cert-hash {PIN} "
    )


def test_control_plane_join_command():
    key = "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204"
    line = join.control_plane_join_command(
        "192.168.0.101:6443",
        tokens.parse_token("abcdef.0123456789abcdef"),
        [PIN, PIN.upper().replace("SHA256", "sha256")],
        key,
    )
    assert line == (
        "kubeadm join 192.168.0.101:6443 --token abcdef.0123456789abcdef \\\n"
        f"    --discovery-token-ca-cert-hash {PIN} --discovery-token-ca-cert-hash {PIN} \\\n"
        f"    --control-plane --certificate-key {key}"
    )
    withheld = join.join_command(
        "x:6443",
        "abcdef.0123456789abcdef",
        [PIN],
        control_plane=True,
        certificate_key=key,
        withhold_token=True,
        withhold_certificate_key=True,
    )
    assert "0123456789abcdef" not in withheld and key not in withheld and "<value withheld>" in withheld


def test_print_join_command_is_the_template_on_one_line():
    key = "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204"
    worker = join.worker_join_command("cp:6443", "abcdef.0123456789abcdef", [PIN])
    assert (
        join.one_line(worker)
        == f"kubeadm join cp:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {PIN} "
    )
    plane = join.control_plane_join_command("cp:6443", "abcdef.0123456789abcdef", [PIN], key)
    assert join.one_line(plane) == (
        f"kubeadm join cp:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {PIN} "
        f"--control-plane --certificate-key {key}"
    )


def test_join_command_rejects_bad_input():
    with pytest.raises(TokenFormatError):
        join.worker_join_command("x:6443", "not-a-token", [PIN])
    with pytest.raises(PinError):
        join.worker_join_command("x:6443", "abcdef.0123456789abcdef", ["deadbeef"])
    with pytest.raises(CertificateKeyError):
        join.control_plane_join_command("x:6443", "abcdef.0123456789abcdef", [PIN], "abc")


def test_pins_for_generated_ca_round_trip():
    ca = pki.generate_ca("kubernetes", "ECDSA-P256")
    line = join.worker_join_command("10.0.0.1:6443", str(tokens.generate_token()), [ca_pin_hash(ca.cert)])
    assert ca_pin_hash(ca.cert) in line


# --- certificate keys and kubeadm-certs ---------------------------------------------


def test_certificate_key_shape():
    key = certkeys.generate_certificate_key()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key != certkeys.generate_certificate_key()


def test_encrypt_layout_is_nonce_ciphertext_tag():
    key = "00" * 32
    nonce = bytes(range(12))
    blob = certkeys.encrypt(b"hello", key, nonce=nonce)
    assert blob[:12] == nonce and len(blob) == 12 + 5 + 16
    # Same bytes as Go's gcm.Seal(nonce, nonce, data, nil).
    assert blob == nonce + AESGCM(bytes(32)).encrypt(nonce, b"hello", None)
    assert certkeys.decrypt(blob, key) == b"hello"


def test_wrong_key_and_tampering_are_rejected_without_leaking():
    key, other = certkeys.generate_certificate_key(), certkeys.generate_certificate_key()
    blob = certkeys.encrypt(b"-----BEGIN RSA PRIVATE KEY-----", key)
    with pytest.raises(CertificateKeyError, match="message authentication failed") as err:
        certkeys.decrypt(blob, other)
    assert other not in str(err.value) and key not in str(err.value)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(CertificateKeyError):
        certkeys.decrypt(tampered, key)
    with pytest.raises(CertificateKeyError, match="64 hexadecimal"):
        certkeys.decrypt(blob, "xyz")


def test_kubeadm_certs_rbac_lets_bootstrap_tokens_read_only_that_secret():
    assert certkeys.ROLE["metadata"] == {"name": "kubeadm:kubeadm-certs", "namespace": "kube-system"}
    assert certkeys.ROLE["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["kubeadm-certs"], "verbs": ["get"]}
    ]
    assert certkeys.ROLE_BINDING["metadata"] == certkeys.ROLE["metadata"]
    assert certkeys.ROLE_BINDING["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "kubeadm:kubeadm-certs",
    }
    assert certkeys.ROLE_BINDING["subjects"] == [
        {
            "kind": "Group",
            "apiGroup": "rbac.authorization.k8s.io",
            "name": "system:bootstrappers:kubeadm:default-node-token",
        }
    ]


def test_kubeadm_certs_secret_round_trip():
    key = certkeys.generate_certificate_key()
    files = {
        "ca.crt": b"CA",
        "ca.key": b"CAKEY",
        "sa.pub": b"PUB",
        "sa.key": b"SAKEY",
        "front-proxy-ca.crt": b"FP",
        "front-proxy-ca.key": b"FPKEY",
        "etcd/ca.crt": b"E",
    }
    secret = certkeys.kubeadm_certs_secret(files, key, owner_token_id="abcdef", owner_uid="uid-1")
    assert secret["metadata"]["name"] == "kubeadm-certs"
    assert secret["metadata"]["ownerReferences"][0]["name"] == "bootstrap-token-abcdef"
    assert sorted(secret["data"]) == sorted(
        [
            "ca.crt",
            "ca.key",
            "front-proxy-ca.crt",
            "front-proxy-ca.key",
            "sa.pub",
            "sa.key",
            "etcd-ca.crt",
            "etcd-ca.key",
        ]
    )
    assert secret["data"]["etcd-ca.key"] == ""
    assert base64.b64decode(secret["data"]["ca.key"]) != b"CAKEY"
    assert certkeys.decrypt_kubeadm_certs(secret, key) == files

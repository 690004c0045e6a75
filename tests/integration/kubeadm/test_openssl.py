"""Generated certificates read back by real openssl."""

import subprocess

import pytest

from kubeadm import certs, pki
from kubeadm.config import default_cluster_configuration, default_init_configuration
from kubeadm.discovery import ca_pin_hash

from ._support import require_binary

pytestmark = pytest.mark.integration

ALGORITHMS = ["RSA-2048", "ECDSA-P256", "ECDSA-P384"]


def _openssl(*args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        [require_binary("openssl"), *args], input=stdin, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture(scope="module", params=ALGORITHMS)
def tree_dir(request, tmp_path_factory):
    init = default_init_configuration(advertise_address="192.0.2.10", node_name="cp1")
    cluster = default_cluster_configuration()
    cluster.encryption_algorithm = request.param
    cluster.control_plane_endpoint = "lb.example.test:6443"
    cluster.api_server.cert_sans = ["203.0.113.7", "*.apps.example.test"]
    tree = certs.generate_pki_tree(init, cluster)
    directory = tmp_path_factory.mktemp(request.param)
    certs.write_pki(tree, directory)
    return directory, tree, request.param


def test_openssl_verifies_every_leaf_against_its_ca(tree_dir):
    directory, _, _ = tree_dir
    for s in certs.LEAF_SPECS:
        ca = directory / f"{s.ca_base_name}.crt"
        out = _openssl("verify", "-CAfile", str(ca), str(directory / f"{s.base_name}.crt"))
        assert out.strip().endswith(": OK")
    for base in certs.CA_SPECS:
        _openssl("verify", "-CAfile", str(directory / f"{base}.crt"), str(directory / f"{base}.crt"))


def test_openssl_refuses_a_leaf_against_the_wrong_ca(tree_dir):
    directory, _, _ = tree_dir
    result = subprocess.run(
        [
            require_binary("openssl"),
            "verify",
            "-CAfile",
            str(directory / "etcd/ca.crt"),
            str(directory / "apiserver.crt"),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


def test_openssl_text_shows_sans_and_usages(tree_dir):
    directory, _, algorithm = tree_dir
    text = _openssl("x509", "-in", str(directory / "apiserver.crt"), "-noout", "-text")
    assert (
        "DNS:*.apps.example.test, DNS:cp1, DNS:kubernetes, DNS:kubernetes.default, "
        "DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, DNS:lb.example.test, "
        "IP Address:10.96.0.1, IP Address:192.0.2.10, IP Address:203.0.113.7"
    ) in text
    assert "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication" in text
    assert "CA:FALSE" in text
    expected_sig = {
        "RSA-2048": "sha256WithRSAEncryption",
        "ECDSA-P256": "ecdsa-with-SHA256",
        "ECDSA-P384": "ecdsa-with-SHA384",
    }[algorithm]
    assert f"Signature Algorithm: {expected_sig}" in text
    etcd = _openssl("x509", "-in", str(directory / "etcd/server.crt"), "-noout", "-text")
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in etcd
    assert "DNS:cp1, DNS:localhost, IP Address:192.0.2.10, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" in etcd
    ca = _openssl("x509", "-in", str(directory / "ca.crt"), "-noout", "-text")
    assert "Certificate Sign" in ca and "CA:TRUE" in ca and "DNS:kubernetes" in ca
    assert "Subject: CN = kubernetes" in ca


def test_openssl_pin_and_fingerprint_agree(tree_dir):
    directory, tree, _ = tree_dir
    pub = subprocess.run(
        [require_binary("openssl"), "x509", "-pubkey", "-noout", "-in", str(directory / "ca.crt")],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True, timeout=60
    ).stdout
    digest = _openssl("dgst", "-sha256", "-hex", stdin=der).split("= ")[-1].strip()
    assert ca_pin_hash(tree["ca"].cert) == "sha256:" + digest
    fingerprint = _openssl("x509", "-in", str(directory / "ca.crt"), "-noout", "-fingerprint", "-sha256")
    assert fingerprint.strip().split("=", 1)[1] == pki.fingerprint_sha256(tree["ca"].cert)


def test_openssl_reads_the_keys(tree_dir):
    directory, _, algorithm = tree_dir
    key_file = directory / "apiserver.key"
    if algorithm.startswith("RSA"):
        assert key_file.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
        _openssl("rsa", "-in", str(key_file), "-check", "-noout")
    else:
        assert key_file.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
        _openssl("ec", "-in", str(key_file), "-check", "-noout")
    assert (directory / "sa.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    _openssl("pkey", "-pubin", "-in", str(directory / "sa.pub"), "-noout")

"""CA generation and key-pair loading shaped like kubeadm's."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from kubeadm import pki
from kubeadm.errors import CertificateError, PrivateKeyError

NOW = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def test_cluster_authorities_have_kubeadm_names_and_shape():
    cas = pki.generate_cluster_authorities("ECDSA-P256", now=NOW)
    assert set(cas) == {"ca", "front-proxy-ca", "etcd/ca", "sa"}
    assert cas["sa"].cert is None
    for base, cn in (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca")):
        cert = cas[base].cert
        assert pki.common_name(cert) == cn
        attr = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
        assert attr._type == _ASN1Type.PrintableString
        assert cert.not_valid_before_utc == NOW - datetime.timedelta(minutes=5)
        assert cert.not_valid_after_utc == NOW + datetime.timedelta(hours=87600)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).critical
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        assert pki.alt_names(cert) == ([cn], [])
        assert 0 < cert.serial_number < 2**63
        pki.verify_signed_by(cert, cert)


@pytest.mark.parametrize(
    ("algorithm", "key_type", "size"),
    [
        ("RSA-2048", rsa.RSAPrivateKey, 2048),
        ("ECDSA-P256", ec.EllipticCurvePrivateKey, 256),
        ("ECDSA-P384", ec.EllipticCurvePrivateKey, 384),
    ],
)
def test_algorithms_and_pem_formats(algorithm, key_type, size):
    pair = pki.generate_ca("kubernetes", algorithm, now=NOW)
    assert isinstance(pair.key, key_type) and pair.key.key_size == size
    header = b"-----BEGIN RSA PRIVATE KEY-----" if algorithm.startswith("RSA") else b"-----BEGIN EC PRIVATE KEY-----"
    assert pair.key_pem().startswith(header)
    assert pair.public_key_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    loaded = pki.load_key_pair(pair.cert_pem(), pair.key_pem())
    assert loaded.cert == pair.cert
    assert pki.algorithm_of(loaded.key) == algorithm


def test_load_rejects_mismatched_and_garbage_without_leaking_key():
    a = pki.generate_ca("a", "ECDSA-P256")
    b = pki.generate_ca("b", "ECDSA-P256")
    with pytest.raises(PrivateKeyError, match="different key"):
        pki.load_key_pair(a.cert_pem(), b.key_pem())
    broken = b.key_pem().replace(b"M", b"A", 3)
    with pytest.raises(PrivateKeyError) as err:
        pki.load_key_pair(None, broken)
    assert broken.decode()[40:80] not in str(err.value)
    with pytest.raises(CertificateError, match="BEGIN CERTIFICATE"):
        pki.load_key_pair(b"hello", a.key_pem())


def test_fingerprint_is_openssl_style():
    cert = pki.generate_ca("kubernetes", "ECDSA-P256").cert
    fp = pki.fingerprint_sha256(cert)
    assert len(fp) == 95 and fp.count(":") == 31 and fp == fp.upper()


def test_unknown_algorithm():
    with pytest.raises(PrivateKeyError, match="encryptionAlgorithm"):
        pki.generate_ca("kubernetes", "DSA-1024")

"""Keys and certificates shaped exactly like kubeadm's.

Source: cmd/kubeadm/app/util/pkiutil/pki_helpers.go (NewSelfSignedCACert,
NewSignedCert, GeneratePrivateKey, RemoveDuplicateAltNames) and Go's
crypto/x509 CreateCertificate, whose choices kubeadm inherits:

* serial: uniform in [1, 2^63 - 1);
* subject: O before CN, all O values in one RDN, PrintableString when the
  text allows it (Go's asn1 rule), else UTF8String;
* extensions in Go's order: keyUsage (critical), extKeyUsage, basicConstraints
  (critical, CA:TRUE or CA:FALSE), subjectKeyIdentifier (CAs only),
  authorityKeyIdentifier (leaves only, = the CA's SKI), subjectAltName (DNS
  names first, then IPs);
* SKI: the first 160 bits of SHA-256 over the subjectPublicKey bits (RFC 7093),
  as Go >= 1.25 computes it and as the real kubeadm v1.37.2 writes it (checked
  against its ca.crt); kubeadm <= 1.34 (Go 1.24) used SHA-1, ``ski_hash="sha1"``;
* key usage: DigitalSignature + KeyEncipherment (+ CertSign for CAs), for RSA
  and ECDSA alike (checked on ECDSA-P256 certificates of kubeadm v1.37.2);
* NotBefore: the run's start time minus 5 minutes; kubeconfig client
  certificates instead take the CA's NotBefore (NewSignedCert's default, seen
  in kubeadm v1.37.2's admin.conf), hence ``not_before``;
* CA certificates carry a DNS SAN equal to their CN;
* signature: SHA-256 with RSA or P-256 keys, SHA-384 with P-384 keys.

PEM: certificates "CERTIFICATE", RSA keys PKCS#1 "RSA PRIVATE KEY", ECDSA keys
SEC1 "EC PRIVATE KEY", public keys PKIX "PUBLIC KEY".
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeadm.errors import CertificateError, PrivateKeyError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
DEFAULT_ALGORITHM = "RSA-2048"
CA_VALIDITY = timedelta(hours=87600)  # constants.CACertificateValidityPeriod
CERT_VALIDITY = timedelta(hours=8760)  # constants.CertificateValidityPeriod
CERTIFICATE_BACKDATE = timedelta(minutes=5)  # constants.CertificateBackdate
_MAX_SERIAL = 2**63 - 1  # math.MaxInt64

SERVER_AUTH = "serverAuth"
CLIENT_AUTH = "clientAuth"
_EKU = {SERVER_AUTH: ExtendedKeyUsageOID.SERVER_AUTH, CLIENT_AUTH: ExtendedKeyUsageOID.CLIENT_AUTH}
_EKU_NAMES = {v: k for k, v in _EKU.items()}

# Go's asn1 isPrintable (marshal side: '*' and '&' are not printable).
_PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def generate_private_key(algorithm: str = DEFAULT_ALGORITHM) -> PrivateKey:
    """pkiutil.GeneratePrivateKey for an encryptionAlgorithm value."""
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ECDSA-P384":
        return ec.generate_private_key(ec.SECP384R1())
    sizes = {"RSA-2048": 2048, "RSA-3072": 3072, "RSA-4096": 4096}
    if algorithm not in sizes:
        raise PrivateKeyError(f"encryptionAlgorithm: expected one of {', '.join(ALGORITHMS)}, found {algorithm!r}")
    return rsa.generate_private_key(public_exponent=65537, key_size=sizes[algorithm])


def algorithm_of(key: PrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """The encryptionAlgorithm name of a key ("RSA-2048", "ECDSA-P256", ...)."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA-{key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        names = {"secp256r1": "ECDSA-P256", "secp384r1": "ECDSA-P384", "secp521r1": "ECDSA-P521"}
        return names.get(key.curve.name, f"ECDSA-{key.curve.name}")
    raise PrivateKeyError(f"key: expected an RSA or ECDSA key, found {type(key).__name__}")


def _signature_hash(signer: PrivateKey) -> hashes.HashAlgorithm:
    """Go's signingParamsForKey: SHA-384 for P-384, SHA-512 for P-521, else SHA-256."""
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        if signer.curve.name == "secp384r1":
            return hashes.SHA384()
        if signer.curve.name == "secp521r1":
            return hashes.SHA512()
    return hashes.SHA256()


def _name_attribute(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute:
    if value and all(c in _PRINTABLE for c in value):
        return x509.NameAttribute(oid, value, _type=_ASN1Type.PrintableString)
    return x509.NameAttribute(oid, value, _type=_ASN1Type.UTF8String)


def build_name(common_name: str, organization: tuple[str, ...] | list[str] = ()) -> x509.Name:
    """pkix.Name{CommonName, Organization}.ToRDNSequence(): O first, then CN."""
    rdns = []
    if organization:
        rdns.append(
            x509.RelativeDistinguishedName([_name_attribute(NameOID.ORGANIZATION_NAME, o) for o in organization])
        )
    if common_name:
        rdns.append(x509.RelativeDistinguishedName([_name_attribute(NameOID.COMMON_NAME, common_name)]))
    return x509.Name(rdns)


def new_serial() -> int:
    """cryptorand.Int(MaxInt64-1) + 1."""
    return secrets.randbelow(_MAX_SERIAL - 1) + 1


def _utc_seconds(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise CertificateError("now: expected an aware datetime (with tzinfo), found a naive one")
    return value.astimezone(datetime.UTC).replace(microsecond=0)


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def dedupe_alt_names(dns_names: list[str], ips: list[str]) -> tuple[list[str], list[ipaddress._BaseAddress]]:
    """RemoveDuplicateAltNames: DNS names de-duplicated and sorted; IPs
    de-duplicated keeping their first position (keyed on the text form)."""
    seen: set[str] = set()
    ip_objects = []
    for ip in ips:
        parsed = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        if str(parsed) not in seen:
            seen.add(str(parsed))
            ip_objects.append(parsed)
    return sorted(set(dns_names)), ip_objects


@dataclass(frozen=True)
class KeyPair:
    """A certificate (None for the service-account key) and its private key."""

    cert: x509.Certificate | None
    key: PrivateKey = field(repr=False)

    def cert_pem(self) -> bytes:
        if self.cert is None:
            raise CertificateError("cert: this key pair has no certificate (service-account keys have none)")
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return private_key_pem(self.key)

    def public_key_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def algorithm(self) -> str:
        return algorithm_of(self.key)


def private_key_pem(key: PrivateKey) -> bytes:
    """keyutil.MarshalPrivateKeyToPEM: PKCS#1 for RSA, SEC1 for ECDSA."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def generate_ca(
    common_name: str,
    algorithm: str = DEFAULT_ALGORITHM,
    validity: timedelta = CA_VALIDITY,
    now: datetime.datetime | None = None,
    *,
    organization: tuple[str, ...] = (),
    key: PrivateKey | None = None,
    ski_hash: str = "sha256",
) -> KeyPair:
    """A self-signed CA as NewSelfSignedCACert makes it.

    ``now`` is the kubeadm run's start time: NotBefore = now - 5m,
    NotAfter = now + validity.
    """
    if not common_name:
        raise CertificateError("commonName: expected a non-empty CN for the CA, found ''")
    start = _utc_seconds(now) if now else now_utc()
    key = key or generate_private_key(algorithm)
    name = build_name(common_name, organization)
    ski = subject_key_identifier(key.public_key(), ski_hash)
    builder = (
        x509.CertificateBuilder()
        .serial_number(new_serial())
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .not_valid_before(start - CERTIFICATE_BACKDATE)
        .not_valid_after(start + validity)
        .add_extension(_key_usage(is_ca=True), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
    )
    return KeyPair(builder.sign(key, _signature_hash(key)), key)


def subject_key_identifier(public_key: object, ski_hash: str = "sha256") -> x509.SubjectKeyIdentifier:
    """Go's CreateCertificate SKI: hash of the subjectPublicKey BIT STRING
    contents; truncated SHA-256 (Go >= 1.25) or SHA-1 (older Go)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        bits = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if ski_hash == "sha1":
        return x509.SubjectKeyIdentifier(hashlib.sha1(bits).digest())
    return x509.SubjectKeyIdentifier(hashlib.sha256(bits).digest()[:20])


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue_certificate(
    ca: KeyPair,
    common_name: str,
    *,
    organization: tuple[str, ...] | list[str] = (),
    usages: tuple[str, ...] | list[str] = (CLIENT_AUTH,),
    dns_names: tuple[str, ...] | list[str] = (),
    ip_addresses: tuple[str, ...] | list[str] = (),
    algorithm: str = DEFAULT_ALGORITHM,
    validity: timedelta = CERT_VALIDITY,
    now: datetime.datetime | None = None,
    key: PrivateKey | None = None,
    not_before: datetime.datetime | None = None,
) -> KeyPair:
    """A leaf certificate signed by ``ca`` as NewSignedCert makes it.

    NotBefore = now - 5m (or ``not_before``), NotAfter = now + validity. Like
    kubeadm, the leaf is not capped at the CA's NotAfter.
    """
    if ca.cert is None:
        raise CertificateError("ca: expected a CA certificate, found a key pair without certificate")
    if not common_name:
        raise CertificateError("commonName: expected a non-empty CN, found ''")
    if not usages:
        raise CertificateError("usages: expected at least one of serverAuth, clientAuth, found none")
    unknown = [u for u in usages if u not in _EKU]
    if unknown:
        raise CertificateError(f"usages: expected serverAuth or clientAuth, found {', '.join(unknown)}")
    start = _utc_seconds(now) if now else now_utc()
    key = key or generate_private_key(algorithm)
    dns, ips = dedupe_alt_names(list(dns_names), list(ip_addresses))
    try:
        ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ca_ski = None
    builder = (
        x509.CertificateBuilder()
        .serial_number(new_serial())
        .subject_name(build_name(common_name, tuple(organization)))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .not_valid_before(_utc_seconds(not_before) if not_before else start - CERTIFICATE_BACKDATE)
        .not_valid_after(start + validity)
        .add_extension(_key_usage(is_ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([_EKU[u] for u in usages]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if ca_ski is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    if dns or ips:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ip) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return KeyPair(builder.sign(ca.key, _signature_hash(ca.key)), key)


def generate_service_account_key(algorithm: str = DEFAULT_ALGORITHM) -> KeyPair:
    """sa.key / sa.pub: a bare key pair in the cluster's algorithm."""
    return KeyPair(None, generate_private_key(algorithm))


# kubeadm base names and CNs of the CAs (certs/certlist.go).
CA_COMMON_NAMES = {"ca": "kubernetes", "front-proxy-ca": "front-proxy-ca", "etcd/ca": "etcd-ca"}


def generate_cluster_authorities(
    algorithm: str = DEFAULT_ALGORITHM,
    now: datetime.datetime | None = None,
    *,
    validity: timedelta = CA_VALIDITY,
    external_etcd: bool = False,
) -> dict[str, KeyPair]:
    """The three CAs and the service-account key, keyed by kubeadm base name:
    "ca", "front-proxy-ca", "etcd/ca" (absent with external etcd), "sa"."""
    start = _utc_seconds(now) if now else now_utc()
    result = {}
    for base, cn in CA_COMMON_NAMES.items():
        if base == "etcd/ca" and external_etcd:
            continue
        result[base] = generate_ca(cn, algorithm, validity, start)
    result["sa"] = generate_service_account_key(algorithm)
    return result


# --- loading -------------------------------------------------------------------


def load_certificate(pem: bytes, *, name: str = "certificate") -> x509.Certificate:
    """First certificate of a PEM bundle (kubeadm uses certs[0])."""
    certs = load_certificates(pem, name=name)
    return certs[0]


def load_certificates(pem: bytes, *, name: str = "certificate") -> list[x509.Certificate]:
    if isinstance(pem, str):
        pem = pem.encode()
    if not isinstance(pem, bytes) or b"-----BEGIN CERTIFICATE-----" not in pem:
        raise CertificateError(
            f"{name}: expected PEM data with a 'BEGIN CERTIFICATE' block, found "
            f"{len(pem) if isinstance(pem, bytes) else 0} bytes without one"
        )
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CertificateError(
            f"{name}: expected a valid X.509 certificate in PEM, found undecodable data ({exc})"
        ) from None


def load_private_key(pem: bytes, *, name: str = "private key") -> PrivateKey:
    """PKCS#1, SEC1 or PKCS#8 PEM; only RSA and ECDSA (TryLoadKeyFromDisk).

    Error messages never include key material.
    """
    if isinstance(pem, str):
        pem = pem.encode()
    if not isinstance(pem, bytes) or b"PRIVATE KEY-----" not in pem:
        raise PrivateKeyError(
            f"{name}: expected a PEM private key block (RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY), found none"
        )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PrivateKeyError(
            f"{name}: expected an unencrypted RSA or ECDSA private key in PEM, found data that does not parse as one"
        ) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise PrivateKeyError(f"{name}: expected an RSA or ECDSA key, found {type(key).__name__}")
    return key


def load_public_key(pem: bytes, *, name: str = "public key") -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem if isinstance(pem, bytes) else pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PrivateKeyError(f"{name}: expected a PEM 'PUBLIC KEY' block, found data that does not parse") from None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise PrivateKeyError(f"{name}: expected an RSA or ECDSA key, found {type(key).__name__}")
    return key


def _public_der(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_key_pair(cert_pem: bytes | None, key_pem: bytes, *, name: str = "key pair") -> KeyPair:
    """Load a certificate (optional) and its key; checks that they belong together."""
    key = load_private_key(key_pem, name=f"{name} key")
    if cert_pem is None:
        return KeyPair(None, key)
    cert = load_certificate(cert_pem, name=f"{name} certificate")
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise PrivateKeyError(
            f"{name}: expected the private key of the certificate "
            f"{cert.subject.rfc4514_string()!r}, found a different key"
        )
    return KeyPair(cert, key)


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def verify_signed_by(cert: x509.Certificate, ca_cert: x509.Certificate, *, name: str = "certificate") -> None:
    """Check issuer name and signature; raises CertificateError."""
    if cert.issuer != ca_cert.subject:
        raise CertificateError(
            f"{name}: expected issuer {ca_cert.subject.rfc4514_string()!r}, found {cert.issuer.rfc4514_string()!r}"
        )
    public = ca_cert.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        else:
            raise CertificateError(f"{name}: unsupported CA key type {type(public).__name__}")
    except InvalidSignature:
        raise CertificateError(
            f"{name}: expected a signature by {ca_cert.subject.rfc4514_string()!r}, found one that does not verify"
        ) from None


def signer_among(cert: x509.Certificate, cas: Mapping[str, x509.Certificate]) -> str | None:
    """The name of the first CA in ``cas`` whose signature on ``cert`` verifies, or None."""
    for name, ca_cert in cas.items():
        try:
            verify_signed_by(cert, ca_cert, name=name)
        except Exception:  # a foreign file (another key type, a broken signature) is just not ours
            continue
        return name
    return None


def is_ca(cert: x509.Certificate) -> bool:
    """BasicConstraints says CA (a certificate without the extension is not one)."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def organizations(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def extended_key_usages(cert: x509.Certificate) -> list[str]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku]


def alt_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses as text) of a certificate, in their order."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return san.get_values_for_type(x509.DNSName), [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]

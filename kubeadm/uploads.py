"""Files Kubeboard writes onto a machine before kubeadm runs there: its CA material.

* ``init_upload_files``: the first control plane gets the three CAs and the service-account key
  pair under /etc/kubernetes/pki, so ``kubeadm init phase certs`` reuses them ("Using existing ca
  certificate authority", "Using the existing "sa" key") and signs every leaf with Kubeboard's CAs.
  Modes are those kubeadm itself gives the files on init: certificates 0644, keys 0600, and
  sa.pub 0600 (keyutil.WriteKey, as the real v1.37.2 wrote it).
* ``control_plane_shared_files``: an extra control plane, the pre-seeded way (as Cluster API
  does): the same eight files a ``control-plane-prepare download-certs`` would have written, with
  the modes download-certs gives them on v1.37.2 (certificates and sa.pub 0644, keys 0600; Cluster
  API uses 0640 for certificates, which kubeadm accepts as well). With them in place a join
  without a certificate key skips download-certs and its preflight finds the shared
  certificates; without them it fails with "failure loading certificate for CA ...".

Directories: /etc/kubernetes/pki and pki/etcd are 0755 on kubeadm's machines. The content of
the key files is secret: never log an UploadFile's ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kubeadm import certs, pki
from kubeadm.config import DEFAULT_CERTIFICATES_DIR
from kubeadm.errors import CertificateError
from kubeadm.pki import KeyPair

CERT_MODE = certs.CERT_MODE
KEY_MODE = certs.KEY_MODE
DIR_MODE = 0o755

# kubeadm base name -> (certificate or public-key file, key file), relative to the pki directory.
AUTHORITY_FILES = {
    "ca": ("ca.crt", "ca.key"),
    "front-proxy-ca": ("front-proxy-ca.crt", "front-proxy-ca.key"),
    "etcd/ca": ("etcd/ca.crt", "etcd/ca.key"),
    "sa": ("sa.pub", "sa.key"),
}


@dataclass(frozen=True)
class UploadFile:
    path: str
    data: bytes = field(repr=False)
    mode: int

    def __repr__(self) -> str:
        return f"UploadFile(path={self.path!r}, {len(self.data)} bytes, mode={oct(self.mode)})"


AuthorityInput = KeyPair | tuple[bytes | str, bytes | str]


def _pair(name: str, value: AuthorityInput) -> KeyPair:
    """A KeyPair from a KeyPair or (public PEM, key PEM); the public PEM is the certificate for a
    CA and the PKIX public key for "sa". The key must match."""
    if isinstance(value, KeyPair):
        pair = value
    elif isinstance(value, tuple) and len(value) == 2:
        public, key = (v.encode() if isinstance(v, str) else v for v in value)
        if name == "sa":
            pair = pki.load_key_pair(None, key, name=name)
            if pki.load_public_key(public, name=f"{name} public key") != pair.key.public_key():
                raise CertificateError(f"{name}: the public key does not belong to the private key")
        else:
            pair = pki.load_key_pair(public, key, name=name)
    else:
        raise CertificateError(f"{name}: expected a KeyPair or (public PEM, key PEM), found {type(value).__name__}")
    if name != "sa" and pair.cert is None:
        raise CertificateError(f"{name}: expected a CA certificate, found only a key")
    return pair


def _files(
    authorities: Mapping[str, AuthorityInput], *, external_etcd: bool, certificates_dir: str, sa_pub_mode: int
) -> list[UploadFile]:
    wanted = [n for n in AUTHORITY_FILES if not (external_etcd and n == "etcd/ca")]
    missing = [n for n in wanted if n not in authorities]
    if missing:
        raise CertificateError(f"authorities: expected {', '.join(wanted)}, missing {', '.join(missing)}")
    root = certificates_dir.rstrip("/")
    files = []
    for name in wanted:
        pair = _pair(name, authorities[name])
        public_file, key_file = AUTHORITY_FILES[name]
        if name == "sa":
            files.append(UploadFile(f"{root}/{public_file}", pair.public_key_pem(), sa_pub_mode))
        else:
            files.append(UploadFile(f"{root}/{public_file}", pair.cert_pem(), CERT_MODE))
        files.append(UploadFile(f"{root}/{key_file}", pair.key_pem(), KEY_MODE))
    return files


def init_upload_files(
    authorities: Mapping[str, AuthorityInput],
    *,
    external_etcd: bool = False,
    certificates_dir: str = DEFAULT_CERTIFICATES_DIR,
) -> list[UploadFile]:
    """The CA files of the first control plane (``authorities`` keyed "ca", "front-proxy-ca",
    "etcd/ca" — absent with external etcd —, "sa")."""
    return _files(authorities, external_etcd=external_etcd, certificates_dir=certificates_dir, sa_pub_mode=KEY_MODE)


def control_plane_shared_files(
    authorities: Mapping[str, AuthorityInput],
    *,
    external_etcd: bool = False,
    certificates_dir: str = DEFAULT_CERTIFICATES_DIR,
) -> list[UploadFile]:
    """The certificates shared among control planes, pre-seeded on a joining control plane
    instead of download-certs (kubeadm's copyCertsToNode / certsphase.SharedCertificateExists)."""
    return _files(authorities, external_etcd=external_etcd, certificates_dir=certificates_dir, sa_pub_mode=CERT_MODE)

"""Certificate keys and the kubeadm-certs Secret (upload-certs / download-certs).

Sources: cmd/kubeadm/app/phases/copycerts/copycerts.go and
cmd/kubeadm/app/util/crypto/crypto.go. The payload of each Secret value is
AES-256-GCM: 12-byte random nonce || ciphertext || 16-byte tag, no additional
data, key = hex-decoded 64-character certificate key. Byte-compatible with
kubeadm's EncryptBytes / DecryptBytes. Keys and plaintext never appear in
messages.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kubeadm.errors import CertificateKeyError
from kubeadm.tokens import DEFAULT_GROUPS

CERTIFICATE_KEY_SIZE = 32  # constants.CertificateKeySize
NONCE_SIZE = 12  # gcm.NonceSize()
TAG_SIZE = 16
SECRET_NAME = "kubeadm-certs"
SECRET_NAMESPACE = "kube-system"
TOKEN_DESCRIPTION = "Proxy for managing TTL for the kubeadm-certs secret"
# The Secret's owner token lives this long, and the Secret with it (constants.DefaultCertTokenDuration).
LIFETIME = timedelta(hours=2)
# certsToTransfer: files under certificatesDir, local etcd.
LOCAL_ETCD_FILES = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "sa.pub",
    "sa.key",
    "etcd/ca.crt",
    "etcd/ca.key",
)
EXTERNAL_ETCD_FILES = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "sa.pub",
    "sa.key",
    "external-etcd-ca.crt",
    "external-etcd.crt",
    "external-etcd.key",
)
# The RBAC upload-certs creates beside the Secret (copycerts.go createRBAC): joining nodes,
# authenticated with a bootstrap token, may read the Secret and nothing else.
ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "kubeadm:kubeadm-certs", "namespace": SECRET_NAMESPACE},
    "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET_NAME], "verbs": ["get"]}],
}
ROLE_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "kubeadm:kubeadm-certs", "namespace": SECRET_NAMESPACE},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:kubeadm-certs"},
    "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": DEFAULT_GROUPS[0]}],
}
_HEX_RE = re.compile(r"[0-9a-fA-F]*")


def generate_certificate_key() -> str:
    """`kubeadm certs certificate-key`: hex of 32 CSPRNG bytes (64 lowercase hex)."""
    return secrets.token_bytes(CERTIFICATE_KEY_SIZE).hex()


def decode_certificate_key(key: str) -> bytes:
    """Hex-decode and size-check a certificate key; the message never shows it."""
    if not isinstance(key, str) or not _HEX_RE.fullmatch(key) or len(key) % 2:
        raise CertificateKeyError(
            "certificateKey: expected 64 hexadecimal characters, found a value of "
            f"{len(key) if isinstance(key, str) else 0} characters that is not hex"
        )
    raw = bytes.fromhex(key)
    if len(raw) != CERTIFICATE_KEY_SIZE:
        raise CertificateKeyError(
            f"certificateKey: expected an AES key of {CERTIFICATE_KEY_SIZE} bytes "
            f"(64 hex characters), found {len(raw)} bytes"
        )
    return raw


def encrypt(data: bytes, key: str, *, nonce: bytes | None = None) -> bytes:
    """crypto.EncryptBytes: nonce || AES-GCM(data) || tag."""
    nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise CertificateKeyError(f"nonce: expected {NONCE_SIZE} bytes, found {len(nonce)}")
    return nonce + AESGCM(decode_certificate_key(key)).encrypt(nonce, data, None)


def decrypt(blob: bytes, key: str, *, name: str = "data") -> bytes:
    """crypto.DecryptBytes; a wrong key or tampered data raises CertificateKeyError."""
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise CertificateKeyError(
            f"{name}: expected at least {NONCE_SIZE + TAG_SIZE} bytes of nonce and tag, found {len(blob)}"
        )
    try:
        return AESGCM(decode_certificate_key(key)).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], None)
    except InvalidTag:
        raise CertificateKeyError(
            f"{name}: error decoding secret data with provided key: cipher: message "
            "authentication failed (wrong certificate key, or the Secret was re-uploaded "
            "with a new key)"
        ) from None


def secret_key_for(path: str) -> str:
    """certOrKeyNameToSecretName: "etcd/ca.crt" -> "etcd-ca.crt"."""
    return path.replace("/", "-")


def kubeadm_certs_secret(
    files: dict[str, bytes | None],
    key: str,
    *,
    external_etcd: bool = False,
    owner_token_id: str | None = None,
    owner_uid: str | None = None,
) -> dict:
    """The kube-system/kubeadm-certs Secret as UploadCerts creates it.

    ``files`` maps PKI-relative paths ("ca.crt", "etcd/ca.key") to bytes; a
    missing file still gets its key with an empty value, as in kubeadm. The
    owner reference to the short-lived token's Secret is added when its id
    and uid are known.
    """
    names = EXTERNAL_ETCD_FILES if external_etcd else LOCAL_ETCD_FILES
    data = {}
    for path in names:
        content = files.get(path)
        data[secret_key_for(path)] = base64.b64encode(encrypt(content, key) if content else b"").decode()
    metadata: dict = {"name": SECRET_NAME, "namespace": SECRET_NAMESPACE}
    if owner_token_id and owner_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "blockOwnerDeletion": True,
                "controller": True,
                "kind": "Secret",
                "name": f"bootstrap-token-{owner_token_id}",
                "uid": owner_uid,
            }
        ]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": data}


def decrypt_kubeadm_certs(secret: dict, key: str) -> dict[str, bytes]:
    """DownloadCerts: PKI-relative path -> plaintext, for every non-empty value."""
    data = secret.get("data") or {}
    out = {}
    for path in LOCAL_ETCD_FILES + EXTERNAL_ETCD_FILES:
        value = data.get(secret_key_for(path))
        if not value:
            continue
        try:
            blob = base64.b64decode(value, validate=True)
        except ValueError:
            raise CertificateKeyError(f"kubeadm-certs {secret_key_for(path)}: expected base64 data") from None
        out[path] = decrypt(blob, key, name=f"kubeadm-certs {secret_key_for(path)}")
    return out

"""Keys of the audit trail, kept outside the database.

* HMAC keys (``KUBEBOARD_AUDIT_KEYS``): ``id:secret`` pairs separated by commas. The first key
  signs new records; every key verifies, so a new key is put in front and the old ones stay
  for the records they signed. Without the variable the embedded default keeps a generated
  key file in the data directory (like the encryption key). A database writer who does not
  have the key cannot produce a record that verifies.
* The checkpoint signing key: an Ed25519 private key (PEM) in ``KUBEBOARD_AUDIT_SIGNING_KEY_FILE``
  (default: a generated file in the data directory). Checkpoints carry its public key and
  signature, so an exported checkpoint can be checked anywhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.keyfiles import load_or_create

KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MIN_SECRET_CHARS = 32

HMAC_NOTICE = (
    "Kubeboard: generated a new audit signing key in {path}. Keep it (and a copy elsewhere): "
    "records signed with it can only be verified with it. In production set KUBEBOARD_AUDIT_KEYS."
)
CHECKPOINT_NOTICE = "Kubeboard: generated a new audit checkpoint key (Ed25519) in {path}. Keep it outside the database."

FORMAT_HELP = (
    "KUBEBOARD_AUDIT_KEYS must be a comma-separated list of id:secret pairs, the id made of letters, digits, "
    f"'-' or '_' (at most 32), the secret at least {MIN_SECRET_CHARS} characters; the first key signs. "
    "Make one with: python -c \"import secrets; print('k2:' + secrets.token_urlsafe(32))\""
)


@dataclass(frozen=True)
class KeyRing:
    signing_id: str
    secrets: dict[str, bytes]

    def sign(self, data: bytes) -> tuple[str, str]:
        """(key id, hex HMAC-SHA256) under the signing key."""
        return self.signing_id, self.mac(self.signing_id, data)

    def mac(self, key_id: str, data: bytes) -> str:
        return hmac.new(self.secrets[key_id], data, hashlib.sha256).hexdigest()

    def verifies(self, key_id: str, data: bytes, expected: str) -> bool:
        return key_id in self.secrets and hmac.compare_digest(self.mac(key_id, data), expected)


def parse_keys(raw: str) -> KeyRing:
    pairs: list[tuple[str, bytes]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        if not sep or not KEY_ID.match(key_id) or len(secret) < MIN_SECRET_CHARS:
            # Name the position, never the value: the value is a secret.
            raise ImproperlyConfigured(f"audit key #{len(pairs) + 1} is malformed. {FORMAT_HELP}")
        if key_id in dict(pairs):
            raise ImproperlyConfigured(f"audit key id {key_id!r} is given twice. {FORMAT_HELP}")
        pairs.append((key_id, secret.encode()))
    if not pairs:
        raise ImproperlyConfigured(f"no audit key configured. {FORMAT_HELP}")
    return KeyRing(signing_id=pairs[0][0], secrets=dict(pairs))


def new_key_line(key_id: str | None = None) -> str:
    # A generated file gets a random id: two machines that each made their own key (a
    # misconfiguration) then show up as "unknown key id", not as edited records.
    return f"{key_id or 'f' + secrets.token_hex(3)}:{secrets.token_urlsafe(32)}"


@functools.cache
def keyring() -> KeyRing:
    raw = settings.AUDIT_KEYS or load_or_create(settings.AUDIT_KEY_FILE, new_key_line, HMAC_NOTICE)
    return parse_keys(raw)


def _new_signing_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return (
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
        .strip()
    )


@functools.cache
def checkpoint_key() -> Ed25519PrivateKey:
    path = Path(settings.AUDIT_SIGNING_KEY_FILE)
    pem = load_or_create(path, _new_signing_pem, CHECKPOINT_NOTICE)
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{path} does not hold a PEM private key (Ed25519 expected)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{path} holds a {type(key).__name__}; the audit checkpoint key must be Ed25519")
    return key


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


@functools.cache
def checkpoint_public_text() -> str:
    """This installation's checkpoint public key as checkpoints carry it (one per append: cached)."""
    return public_key_text(checkpoint_key().public_key())


def load_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


def trusted_checkpoint_keys() -> dict[str, Ed25519PublicKey]:
    """The public keys a checkpoint may be signed with: this installation's key (from its private
    key file) and earlier ones listed in ``AUDIT_CHECKPOINT_PUBLIC_KEYS`` (after a rotation).
    Never the key stored beside a checkpoint: whoever writes the database could swap both."""
    trusted = {checkpoint_public_text(): checkpoint_key().public_key()}
    for text in settings.AUDIT_CHECKPOINT_PUBLIC_KEYS:
        try:
            trusted[text] = load_public_key(text)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"KUBEBOARD_AUDIT_CHECKPOINT_PUBLIC_KEYS: {text[:12]}… is not a base64 raw Ed25519 public key"
            ) from exc
    return trusted


def fingerprint(public_key_b64: str) -> str:
    return "SHA256:" + hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()[:32]


def reset() -> None:
    """Forget cached keys (tests that change the settings; a key rotation in a shell)."""
    keyring.cache_clear()
    checkpoint_key.cache_clear()
    checkpoint_public_text.cache_clear()

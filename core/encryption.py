"""Secrets at rest: MultiFernet under keys that never live in the database.

The first key encrypts; every key decrypts, so a new key can be put in front and the
``rotate_encryption_keys`` command re-encrypts every registered field. Plaintext only
leaves this module through ``SecretValue.reveal()``; everything else (``str``, ``repr``,
templates, admin, logs) sees a mask.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from core.keyfiles import load_or_create

MASK = "••••••••"
PREFIX = "fernet:"

KEY_FILE_NOTICE = (
    "Kubeboard: generated a new encryption key for secrets at rest in {path}. "
    "Back it up: without it, stored CA keys, token secrets and SSH keys cannot be read. "
    "In production set KUBEBOARD_ENCRYPTION_KEYS instead."
)


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@functools.cache
def keyring() -> MultiFernet:
    raw = settings.ENCRYPTION_KEYS or load_or_create(
        settings.ENCRYPTION_KEY_FILE, lambda: Fernet.generate_key().decode(), KEY_FILE_NOTICE
    )
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "KUBEBOARD_ENCRYPTION_KEYS must be a comma-separated list of Fernet keys "
            "(32 url-safe base64-encoded bytes each)"
        ) from exc


def encrypt(plaintext: str) -> str:
    return PREFIX + keyring().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    if not ciphertext.startswith(PREFIX):
        raise DecryptionError("stored value is not in the encrypted format")
    try:
        return keyring().decrypt(ciphertext[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("no configured encryption key decrypts this value") from exc


def rotate(ciphertext: str) -> str:
    return PREFIX + keyring().rotate(ciphertext[len(PREFIX) :].encode()).decode()


class SecretValue:
    """A secret as held in memory: masked everywhere unless explicitly revealed."""

    __slots__ = ("_ciphertext", "_plaintext")

    def __init__(self, *, plaintext: str | None = None, ciphertext: str | None = None) -> None:
        if (plaintext is None) == (ciphertext is None):
            raise ValueError("give exactly one of plaintext or ciphertext")
        self._plaintext = plaintext
        self._ciphertext = ciphertext

    def reveal(self) -> str:
        if self._plaintext is None:
            self._plaintext = decrypt(self._ciphertext)
        return self._plaintext

    @property
    def ciphertext(self) -> str:
        if self._ciphertext is None:
            self._ciphertext = encrypt(self._plaintext)
        return self._ciphertext

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"<SecretValue {MASK}>"

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other.reveal() == self.reveal()

    def __hash__(self) -> int:
        return id(self)


class EncryptedTextField(models.TextField):
    """Stores ``fernet:<token>``; reads back a ``SecretValue`` (decrypted only on reveal)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return SecretValue(ciphertext=value)

    def to_python(self, value):
        if value is None or value == "" or isinstance(value, SecretValue):
            return value
        return SecretValue(plaintext=str(value))

    def get_prep_value(self, value):
        if value is None or value == "":
            return value
        if not isinstance(value, SecretValue):
            value = SecretValue(plaintext=str(value))
        return value.ciphertext

    def value_to_string(self, obj) -> str:
        # Serialization (dumpdata) keeps the ciphertext, never the plaintext.
        value = self.value_from_object(obj)
        return value.ciphertext if isinstance(value, SecretValue) else (value or "")


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) that holds a secret; used by key rotation and tests."""
    from django.apps import apps

    found = []
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, EncryptedTextField):
                found.append((model, field.name))
    return found

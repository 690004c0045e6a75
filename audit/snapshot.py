"""Before/after pictures of an object for its audit record, with secrets left out.

``snapshot(obj)`` maps each concrete field to a JSON value. Encrypted fields become
``"(set)"``/``""`` (never the ciphertext, never the plaintext); very long text is cut with a
note of its length and SHA-256, so a record stays small and still shows that it changed.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import uuid
from typing import Any

from django.db import models

from core.encryption import EncryptedTextField, SecretValue

SECRET_SET = "(set)"
# Plain columns that hold secrets or their hashes (the user's password hash).
SECRET_FIELD_NAMES = frozenset({"password", "secret", "private_key", "key", "session_key", "session_data"})
MAX_TEXT = 1000


def _value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, SecretValue):
        return SECRET_SET
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _value(item) for key, item in value.items()}
    text = str(value)
    if len(text) > MAX_TEXT:
        digest = hashlib.sha256(text.encode()).hexdigest()
        return f"{text[:200]}… ({len(text)} characters, sha256 {digest[:16]})"
    return text


def snapshot(obj: models.Model) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if isinstance(field, EncryptedTextField) or field.name in SECRET_FIELD_NAMES:
            data[field.name] = SECRET_SET if getattr(obj, field.attname) else ""
        elif field.is_relation:
            data[field.name] = getattr(obj, field.attname)
        else:
            data[field.name] = _value(getattr(obj, field.attname))
    return data


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """What an audit record keeps: everything on create or delete, the changed keys on update."""
    if before is None and after is None:
        return {}
    if before is None:
        return {"after": after}
    if after is None:
        return {"before": before}
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return {"before": {key: before.get(key) for key in changed}, "after": {key: after.get(key) for key in changed}}

"""Signed checkpoints of the chain head (Ed25519), made on a schedule and on demand.

A checkpoint says "the chain had ``seq`` records ending in ``head`` at ``created``", signed with
the checkpoint key (``audit.keys``). Exported and kept elsewhere, it lets ``verify_audit``
prove the records up to it unchanged — even against someone holding the HMAC key — and
notice when newer records were removed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from django.db import transaction
from django.utils import timezone

from audit import keys
from audit.models import GENESIS, AuditChainHead, AuditCheckpoint, canonical_json

EXPORT_FIELDS = ("kubeboard_audit_checkpoint", "seq", "head", "created", "public_key", "signature")


class CheckpointFileError(ValueError):
    """An exported checkpoint file cannot be read (message says why)."""


def _message(seq: int, head: str, created: str) -> bytes:
    return canonical_json({"kubeboard_audit_checkpoint": 1, "seq": seq, "head": head, "created": created})


def create_checkpoint(*, reason: str = "on demand") -> AuditCheckpoint:
    """Sign the current head. The audit record saying so comes after it (the caller writes it)."""
    key = keys.checkpoint_key()
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        seq, last = (head.count, head.last_hash or GENESIS) if head else (0, GENESIS)
        created = timezone.now()
        signature = key.sign(_message(seq, last, created.isoformat()))
        return AuditCheckpoint.objects.create(
            seq=seq,
            head=last,
            created=created,
            public_key=keys.public_key_text(key.public_key()),
            signature=base64.b64encode(signature).decode(),
            reason=reason[:32],
        )


def signature_valid(data: dict) -> bool:
    try:
        public = keys.load_public_key(data["public_key"])
        public.verify(base64.b64decode(data["signature"]), _message(data["seq"], data["head"], data["created"]))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True


def export(checkpoint: AuditCheckpoint, path: Path) -> None:
    Path(path).write_text(json.dumps(checkpoint.as_export(), indent=2) + "\n")


def load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise CheckpointFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointFileError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or data.get("kubeboard_audit_checkpoint") != 1:
        raise CheckpointFileError(
            f"{path} is not a Kubeboard audit checkpoint (made by manage.py audit_checkpoint --export)"
        )
    missing = [name for name in EXPORT_FIELDS if name not in data]
    if missing:
        raise CheckpointFileError(f"{path} lacks {', '.join(missing)}")
    if not isinstance(data["seq"], int) or data["seq"] < 0:
        raise CheckpointFileError(f"{path}: seq must be a non-negative integer")
    return data


def scheduled_checkpoint() -> int:
    """django-q2 schedule entry: a checkpoint when records were added since the last one and it
    is older than ``AUDIT_CHECKPOINT_MINUTES`` (0: never on a schedule). Returns its ``seq`` or 0."""
    from datetime import timedelta

    from django.conf import settings

    from audit.context import audit_context
    from audit.services import record

    if settings.AUDIT_CHECKPOINT_MINUTES <= 0:
        return 0
    head = AuditChainHead.objects.filter(pk=1).first()
    latest = AuditCheckpoint.objects.order_by("-seq", "-id").first()
    # The checkpoint's own record follows it: nothing else new means nothing to sign.
    if head is None or head.count == 0 or (latest is not None and latest.seq + 1 >= head.count):
        return 0
    if latest is not None and timezone.now() - latest.created < timedelta(minutes=settings.AUDIT_CHECKPOINT_MINUTES):
        return 0
    with audit_context(source="schedule:audit_checkpoint"), transaction.atomic():
        checkpoint = create_checkpoint(reason="scheduled")
        record("audit.checkpoint_created", details={"seq": checkpoint.seq, "reason": "scheduled"})
    return checkpoint.seq

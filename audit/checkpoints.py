"""Signed checkpoints of the chain head (Ed25519), made on a schedule and on demand.

A checkpoint says "the chain had ``seq`` records ending in ``head`` at ``created``", signed with
the checkpoint key (``audit.keys``). Every checkpoint also leaves the database: it is appended as
one JSON line to a file in ``AUDIT_CHECKPOINT_DIR`` (one file per UTC day), and each process
appends a small checkpoint of the record it just committed (``witness``), so the newest
external checkpoint trails the chain by at most the records whose commit is still under way.
``verify`` checks the chain against the newest external checkpoint: someone who writes the
database but cannot reach that directory can neither rewrite the records up to it (even with
the HMAC key) nor cut them off.

A checkpoint is valid only when signed by this installation's key (``keys.trusted_checkpoint_keys``);
the ``public_key`` written beside it is a label, never trusted.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import keys
from audit.models import GENESIS, AuditChainHead, AuditCheckpoint, canonical_json

EXPORT_FIELDS = ("kubeboard_audit_checkpoint", "seq", "head", "created", "public_key", "signature")
# How much of the end of a day file is read for its newest checkpoint (a few thousand lines).
TAIL_BYTES = 512 * 1024

logger = logging.getLogger(__name__)

# Extra witnesses (a SIEM sink): each gets every checkpoint dict after it was written to the
# directory. A witness that fails is logged, never allowed to fail the append it follows.
WITNESS_HOOKS: list[Callable[[dict], None]] = []


def add_witness(hook: Callable[[dict], None]) -> None:
    if hook not in WITNESS_HOOKS:
        WITNESS_HOOKS.append(hook)


class CheckpointFileError(ValueError):
    """An exported checkpoint file cannot be read (message says why)."""


def _message(seq: int, head: str, created: str) -> bytes:
    return canonical_json({"kubeboard_audit_checkpoint": 1, "seq": seq, "head": head, "created": created})


def sign_head(seq: int, head: str, *, reason: str, at: datetime | None = None) -> dict:
    """A checkpoint of (seq, head) now, as exported and as written to the directory."""
    key = keys.checkpoint_key()
    created = (at or timezone.now()).isoformat()
    return {
        "kubeboard_audit_checkpoint": 1,
        "seq": seq,
        "head": head,
        "created": created,
        "public_key": keys.checkpoint_public_text(),
        "signature": base64.b64encode(key.sign(_message(seq, head, created))).decode(),
        "reason": reason[:32],
    }


def create_checkpoint(*, reason: str = "on demand") -> AuditCheckpoint:
    """Sign the current head, store it and write it to the checkpoint directory (which must
    work: a checkpoint only in the database protects nothing). The audit record saying so
    comes after it (the caller writes it)."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        seq, last = (head.count, head.last_hash or GENESIS) if head else (0, GENESIS)
        created = timezone.now()
        data = sign_head(seq, last, reason=reason, at=created)
        checkpoint = AuditCheckpoint.objects.create(
            seq=seq,
            head=last,
            created=created,
            public_key=data["public_key"],
            signature=data["signature"],
            reason=reason[:32],
        )
        write_external(data, sync=True)
    _notify(data)
    return checkpoint


def record_details(checkpoint: AuditCheckpoint, reason: str) -> dict:
    """What a checkpoint's own audit record carries: the signed checkpoint itself, so the SIEM
    stream (``audit.siem``) delivers it to the collector too, a witness out of the database's reach."""
    return {"seq": checkpoint.seq, "reason": reason, "checkpoint": checkpoint.as_export()}


def signature_problem(data: dict) -> str | None:
    """Why ``data`` is not a checkpoint of this installation (None: it is)."""
    try:
        trusted = keys.trusted_checkpoint_keys()
        public = trusted.get(data["public_key"])
        if public is None:
            return (
                f"it was signed by key {keys.fingerprint(data['public_key'])}, "
                "not by this installation's checkpoint key"
            )
        public.verify(base64.b64decode(data["signature"]), _message(data["seq"], data["head"], data["created"]))
    except InvalidSignature:
        return "its signature is not valid"
    except (ValueError, KeyError, TypeError):
        return "it is malformed"
    return None


def signature_valid(data: dict) -> bool:
    return signature_problem(data) is None


# --- outside the database ------------------------------------------------------------------


class CheckpointDirError(OSError):
    """The checkpoint directory cannot be written (message says which and why)."""


def checkpoint_dir() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_DIR)


def directory_problem() -> str | None:
    """Why checkpoints cannot be written to the checkpoint directory (None: they can)."""
    directory = checkpoint_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return f"the audit checkpoint directory {directory} cannot be made: {exc.strerror or exc}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the audit checkpoint directory {directory} is not writable (KUBEBOARD_AUDIT_CHECKPOINT_DIR)"
    return None


def write_external(data: dict, *, sync: bool) -> Path:
    """Append ``data`` as one line to today's file. One ``write`` of an ``O_APPEND`` file, so
    lines of concurrent processes never interleave; existing lines are never rewritten."""
    directory = checkpoint_dir()
    path = directory / f"checkpoints-{data['created'][:10]}.jsonl"
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the directory is made on first use (or again, if removed)
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(data, sort_keys=True) + "\n").encode())
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise CheckpointDirError(
            f"cannot write the audit checkpoint to {path}: {exc.strerror or exc} (KUBEBOARD_AUDIT_CHECKPOINT_DIR)"
        ) from exc
    return path


def _notify(data: dict) -> None:
    for hook in list(WITNESS_HOOKS):
        try:
            hook(data)
        except Exception:
            logger.exception("audit checkpoint witness %r failed", hook)


_witnessed: dict[str, int] = {}  # checkpoint directory -> newest seq this process wrote there
_witness_lock = threading.Lock()


def witness(seq: int | None, head: str) -> None:
    """After a record committed: write a checkpoint of it outside the database, unless this
    process already wrote one as new. Signs only what this process itself sealed, never a
    head read back from the database. A failure is logged (the record is already committed)."""
    if not seq:
        return
    where = str(checkpoint_dir())
    with _witness_lock:
        if _witnessed.get(where, 0) >= seq:
            return
        _witnessed[where] = seq
    try:
        data = sign_head(seq, head, reason="append")
        write_external(data, sync=False)
    except Exception:
        logger.exception("could not write the external audit checkpoint of record %s", seq)
        return
    _notify(data)


@dataclass
class External:
    """What the checkpoint directory holds: its newest valid checkpoint and any line that is not one."""

    newest: dict | None = None
    where: str = ""  # "<file>:<line>"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.newest is None:
            return ""
        return f"external checkpoint at record {self.newest['seq']} of {self.newest['created']} ({self.where})"


def _tail_lines(path: Path) -> list[tuple[int | None, str]]:
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - TAIL_BYTES)
        handle.seek(start)
        data = handle.read()
    lines = data.split(b"\n")
    if start:
        lines = lines[1:]  # the first one is cut
        return [(None, line.decode("utf-8", "replace")) for line in lines]
    return [(number, line.decode("utf-8", "replace")) for number, line in enumerate(lines, start=1)]


def newest_external(directory: Path | None = None) -> External:
    """The newest valid checkpoint (highest ``seq``) near the end of the last two day files.
    Signatures are checked from the highest ``seq`` down until one holds: a refused line above
    the newest valid one is reported, older lines are not read further."""
    directory = Path(directory or checkpoint_dir())
    result = External()
    if not directory.is_dir():
        result.notes.append(f"no checkpoint directory {directory} yet")
        return result
    candidates: list[tuple[int, str, dict]] = []
    for path in sorted(directory.glob("checkpoints-*.jsonl"))[-2:]:
        lines = _tail_lines(path)
        for index, (number, text) in enumerate(lines):
            if not text.strip():
                continue
            where = f"{path}:{number}" if number else f"{path} (near its end)"
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                if index >= len(lines) - 2:  # a line cut short by a crash while it was written
                    result.notes.append(f"{where} is an incomplete line (ignored)")
                else:
                    result.problems.append(f"{where} is not a checkpoint (not JSON)")
                continue
            if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
                result.problems.append(f"{where} is not a checkpoint")
                continue
            candidates.append((data["seq"], where, data))
    for _seq, where, data in sorted(candidates, key=lambda c: c[0], reverse=True):
        problem = signature_problem(data)
        if problem is None:
            result.newest, result.where = data, where
            break
        result.problems.append(f"the external checkpoint {where} is refused: {problem}")
    if result.newest is None and not result.problems:
        result.notes.append(f"no checkpoint in {directory} yet")
    return result


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
        record("audit.checkpoint_created", details=record_details(checkpoint, "scheduled"))
    return checkpoint.seq

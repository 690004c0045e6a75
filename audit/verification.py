"""Verifying the whole trail on a schedule, and what the pages show of the result.

``scheduled_verify`` (a django-q2 schedule, every minute; it runs when the last verification is
older than ``AUDIT_VERIFY_MINUTES``) and ``manage.py verify_audit`` append their result as one
JSON line to ``verifications.jsonl`` in the checkpoint directory: outside the database, so a
database writer can neither fake a good result nor hide a bad one, and append-only like the
checkpoints beside it. A failed verification logs an ERROR naming the first broken record and
shows a banner to superusers and team admins on every page (``alarm``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from audit.chain import ChainBreak, Report, verify
from audit.checkpoints import checkpoint_dir

logger = logging.getLogger("audit.verification")

STATUS_FILE = "verifications.jsonl"
TAIL_BYTES = 16 * 1024


@dataclass(frozen=True)
class Verification:
    checked_at: datetime
    intact: bool
    records: int
    last_seq: int
    checkpoint: str  # the external checkpoint checked against ("" = none yet)
    checkpoint_seq: int | None
    first_break: str
    problems: int
    source: str


def describe(item: ChainBreak) -> str:
    where = f"record #{item.seq} (id {item.event_id})" if item.seq is not None else "the chain"
    return f"{where}: {item.reason}"


def store(report: Report, *, source: str) -> Verification:
    """Keep ``report``'s outcome (appended to the status file) and log an ERROR if it failed."""
    first = report.first_break
    result = Verification(
        checked_at=timezone.now(),
        intact=report.intact,
        records=report.count,
        last_seq=report.last_seq,
        checkpoint=report.external,
        checkpoint_seq=report.external_seq,
        first_break=describe(first)[:500] if first else "",
        problems=len(report.breaks),
        source=source,
    )
    if first is not None:
        logger.error("audit trail NOT intact (%s problem(s)); first broken: %s", len(report.breaks), describe(first))
    line = json.dumps({**asdict(result), "checked_at": result.checked_at.isoformat()}, sort_keys=True) + "\n"
    directory = checkpoint_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(directory / STATUS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        logger.error("cannot keep the audit verification result in %s: %s", directory, exc.strerror or exc)
    return result


def verify_and_store(*, source: str) -> Report:
    report = verify()
    store(report, source=source)
    return report


def latest() -> Verification | None:
    """The newest stored verification (None: none yet, or the directory cannot be read)."""
    path = checkpoint_dir() / STATUS_FILE
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        try:
            data = json.loads(line)
            data["checked_at"] = datetime.fromisoformat(data["checked_at"])
            return Verification(**data)
        except (ValueError, TypeError, KeyError):
            continue  # a line cut short by a crash, or the start of the tail
    return None


def scheduled_verify() -> bool | None:
    """django-q2 schedule entry: verify when the last verification is older than the interval.
    Returns whether the trail is intact (None: not due)."""
    minutes = settings.AUDIT_VERIFY_MINUTES
    if minutes <= 0:
        return None
    last = latest()
    # A little slack: the schedule fires every minute, and a run that took a while should not
    # push the next one a whole minute later each time.
    if last is not None and timezone.now() - last.checked_at < timedelta(minutes=minutes) - timedelta(seconds=30):
        return None
    return verify_and_store(source="schedule").intact


def alarm(user) -> Verification | None:
    """The failed verification to show ``user`` (superusers and team admins), or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not user.is_superuser:
        from core.permissions import ADMIN, teams_for

        if not teams_for(user, ADMIN).exists():
            return None
    last = latest()
    return last if last is not None and not last.intact else None

"""Follow an operation from a terminal: print its events as they are committed, until it ends.

``follow(operation, write)`` is what ``manage.py operation follow`` and the commands that start
operations (``cluster init``, ``node join``) call to show live progress; it returns the final
status, so a command can exit non-zero unless it is "succeeded".
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from operations.formatting import event_line
from operations.models import Event, Operation

CHUNK = 1000
QUEUED_NOTE_SECONDS = 10


def follow(
    operation: Operation,
    write: Callable[[str], None],
    *,
    after: int = 0,
    poll_seconds: float = 0.2,
    timeout: float | None = None,
) -> str:
    """Write every event after ``after`` (one ``write`` call per event) until the operation has
    finished and everything it wrote was printed. Returns the final status (or the current one
    when ``timeout`` seconds passed first)."""
    from operations.services import reap_operations

    last = after
    began, warned = time.monotonic(), False
    deadline = time.monotonic() + timeout if timeout is not None else None
    lease = settings.OPERATION_LEASE_SECONDS
    while True:
        # The status is read before the events: a finished operation's final event is
        # committed together with its status, so the read below then sees all of them.
        row = Operation.objects.filter(pk=operation.pk).values_list("status", "last_seq", "heartbeat_at").first()
        if row is None:
            write(f"operation {operation.pk} no longer exists")
            return "gone"
        status, last_seq, heartbeat_at = row
        events = list(Event.objects.filter(operation_id=operation.pk, seq__gt=last).order_by("seq")[:CHUNK])
        for event in events:
            write(event_line(event))
            last = event.seq
        if len(events) == CHUNK:
            continue
        if status not in Operation.ACTIVE_STATUSES and last >= last_seq:
            return status
        if status == Operation.Status.RUNNING and heartbeat_at is not None:
            if (timezone.now() - heartbeat_at).total_seconds() > lease:
                reap_operations()  # nobody else may be watching: notice a dead worker ourselves
        if deadline is not None and time.monotonic() > deadline:
            return status
        if status == Operation.Status.QUEUED and not warned and time.monotonic() - began > QUEUED_NOTE_SECONDS:
            write(f"(still queued after {QUEUED_NOTE_SECONDS} s: is a worker running? `manage.py qcluster`)")
            warned = True
        time.sleep(poll_seconds)

"""Event writing: numbered by the one runner, committed in batches, then published.

The order matters: an event is stored before anyone is told about it, so a client that
misses a live message can always read it from the database by its sequence number.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from core.broadcast import group_send
from operations.models import Event, Operation

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another process declared this operation's worker dead; this runner must stop writing."""


def operation_group(operation_id: int) -> str:
    return f"operation-{operation_id}"


def publish(operation_id: int, events: list[dict]) -> None:
    """Tell live listeners about committed events. Losing this message loses nothing: the
    database holds the events and every web process's follower fills gaps from it.

    Each web process watching the operation has one channel in its group, so this is one
    message per web process, whatever the number of people watching."""
    if not events:
        return
    message = {"type": "operation.events", "operation": operation_id, "events": events}
    group_send(operation_group(operation_id), message)


# ANSI/VT escape sequences: CSI (colours, cursor moves; also as the C1 byte), OSC (window
# titles, hyperlinks; ended by BEL or ST), and the short escapes (charset selection, resets).
# Terminal output must not restyle or rewrite what a person reads.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]")
# Every other C0/C1 control character except tab and newline (NUL included: PostgreSQL
# rejects it in text columns, and a stray NUL must not cost the whole batch).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: str, limit: int | None = None) -> str:
    """Make one message safe to store and show: escapes and control characters removed (tabs
    and newlines kept), lone surrogates replaced, and capped at ``limit`` characters with a
    visible marker saying how much was cut."""
    limit = limit if limit is not None else settings.EVENT_MESSAGE_MAX_CHARS
    if len(text) > 4 * limit:
        # Clean only what can be kept: a megabyte line costs no more than a short one.
        cut_before = len(text)
        text = text[: 4 * limit]
    else:
        cut_before = None
    text = _CONTROL.sub("", _ANSI.sub("", text))
    text = text.encode("utf-8", "replace").decode("utf-8")
    total = cut_before if cut_before is not None else len(text)
    if len(text) > limit or cut_before is not None:
        kept = text[:limit]
        return f"{kept} … [{total - len(kept)} more characters cut]"
    return text


def clean_data(value):
    """``clean_text`` for every string inside an event's JSON data (keys and values); anything
    JSON cannot hold becomes its text, so one odd value can never block a batch of events."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): clean_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clean_data(item) for item in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return clean_text(str(value))


class EventWriter:
    """Buffers events of one operation and flushes them by count, by age, and on demand.

    Only the runner that holds the operation's lease may write: every flush re-checks the
    lease in the same transaction as the insert, so a runner declared dead cannot add
    events behind the reaper's back.
    """

    def __init__(
        self,
        operation: Operation,
        *,
        flush_count: int | None = None,
        flush_seconds: float | None = None,
        on_publish: Callable[[int, list[dict]], None] = publish,
    ) -> None:
        self.operation_id = operation.pk
        self.worker = operation.worker
        self.seq = operation.last_seq
        self.flush_count = flush_count or settings.EVENT_FLUSH_COUNT
        self.flush_seconds = flush_seconds if flush_seconds is not None else settings.EVENT_FLUSH_SECONDS
        self.on_publish = on_publish
        self._buffer: list[Event] = []
        self._callbacks: list[tuple[int, Callable[[int], None]]] = []
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._oldest: float | None = None
        self.lease_lost = False

    def emit(
        self,
        message: str,
        *,
        phase: str = "",
        group: str = "",
        level: str = Event.Level.INFO,
        kind: str = Event.Kind.LOG,
        source: str = "",
        data: dict | None = None,
        also: Callable[[int], None] | None = None,
    ) -> int:
        """Number and buffer one event; returns its sequence number. Safe from several threads.

        ``also(seq)`` runs inside the transaction that stores this event, whichever thread's
        flush that is, so rows that describe the event (a phase's state) commit with it.
        """
        if self.lease_lost:
            raise LeaseLost(f"operation {self.operation_id} is no longer held by this worker")
        with self._buffer_lock:
            self.seq += 1
            self._buffer.append(
                Event(
                    operation_id=self.operation_id,
                    seq=self.seq,
                    created=timezone.now(),
                    phase=phase,
                    group=group,
                    level=level,
                    kind=kind,
                    source=clean_text(source)[:64],  # a column, not a message: no marker
                    message=clean_text(message),
                    data=clean_data(data or {}),
                )
            )
            if also is not None:
                self._callbacks.append((self.seq, also))
            if self._oldest is None:
                self._oldest = time.monotonic()
            full = len(self._buffer) >= self.flush_count
            seq = self.seq
        if full:
            self.flush()
        return seq

    def due(self) -> bool:
        oldest = self._oldest
        return oldest is not None and time.monotonic() - oldest >= self.flush_seconds

    def flush(self, *, operation_updates: dict | None = None, also: Callable[[], None] | None = None) -> int:
        """Store and then publish everything buffered; returns how many events were written.

        ``operation_updates`` and ``also`` run in the same transaction as the insert, so a
        client that sees the final event also finds the operation finished. If the database
        refuses the batch, it goes back into the buffer for the next flush: nothing is dropped.
        """
        with self._flush_lock:
            with self._buffer_lock:
                batch, self._buffer, self._oldest = self._buffer, [], None
                callbacks, self._callbacks = self._callbacks, []
            if not batch and not operation_updates and also is None:
                return 0
            try:
                with transaction.atomic():
                    updates = {"heartbeat_at": timezone.now(), **(operation_updates or {})}
                    if batch:
                        updates["last_seq"] = batch[-1].seq
                    held = Operation.objects.filter(
                        pk=self.operation_id, status=Operation.Status.RUNNING, worker=self.worker
                    ).update(**updates)
                    if not held:
                        self.lease_lost = True
                        raise LeaseLost(f"operation {self.operation_id} is no longer held by this worker")
                    Event.objects.bulk_create(batch)
                    for seq, callback in callbacks:
                        callback(seq)
                    if also is not None:
                        also()
            except LeaseLost:
                raise
            except Exception:
                with self._buffer_lock:
                    self._buffer = batch + self._buffer
                    self._callbacks = callbacks + self._callbacks
                    self._oldest = self._oldest or time.monotonic()
                raise
            self.on_publish(self.operation_id, [event.as_message() for event in batch])
            return len(batch)


class Heartbeat(threading.Thread):
    """Renews the operation's lease and flushes events that waited too long.

    Runs beside the runner because a phase may block on a remote command for minutes while
    its last output lines still need to reach the browser.
    """

    def __init__(self, writer: EventWriter, interval: float | None = None) -> None:
        super().__init__(name=f"heartbeat-{writer.operation_id}", daemon=True)
        self.writer = writer
        self.interval = interval or settings.OPERATION_HEARTBEAT_SECONDS
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def run(self) -> None:
        last_beat = time.monotonic()
        tick = min(self.writer.flush_seconds, 0.5) or 0.05
        try:
            while not self._stop_event.wait(tick):
                try:
                    if self.writer.due():
                        self.writer.flush()
                    if time.monotonic() - last_beat >= self.interval:
                        self._beat()
                        last_beat = time.monotonic()
                except LeaseLost:
                    return
                except Exception:
                    # A passing database error must not kill the lease keeper; the next tick retries.
                    log.warning("heartbeat of operation %s failed", self.writer.operation_id, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()

    def _beat(self) -> None:
        held = Operation.objects.filter(
            pk=self.writer.operation_id, status=Operation.Status.RUNNING, worker=self.writer.worker
        ).update(heartbeat_at=timezone.now())
        if not held:
            self.writer.lease_lost = True
            raise LeaseLost(self.writer.operation_id)

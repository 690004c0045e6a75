"""Event writing: numbered by the one runner, committed in batches, then published.

The order matters: an event is stored before anyone is told about it, so a client that
misses a live message can always read it from the database by its sequence number.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from operations.models import Event, Operation

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another process declared this operation's worker dead; this runner must stop writing."""


def operation_group(operation_id: int) -> str:
    return f"operation-{operation_id}"


def publish(operation_id: int, events: list[dict]) -> None:
    """Tell live listeners about committed events. Losing this message loses nothing."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    try:
        async_to_sync(layer.group_send)(operation_group(operation_id), {"type": "operation.events", "events": events})
    except Exception:  # the database already holds the events; clients catch up from it
        log.warning("could not publish events of operation %s to the channel layer", operation_id, exc_info=True)


def clean_text(text: str) -> str:
    # PostgreSQL rejects NUL in text columns; a stray NUL must not cost the whole batch.
    return text.replace("\x00", "\\0")


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
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._oldest: float | None = None
        self.lease_lost = False

    def emit(
        self,
        message: str,
        *,
        phase: str = "",
        level: str = Event.Level.INFO,
        kind: str = Event.Kind.LOG,
        data: dict | None = None,
    ) -> int:
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
                    level=level,
                    kind=kind,
                    message=clean_text(message),
                    data=data or {},
                )
            )
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
        client that sees the final event also finds the operation finished.
        """
        with self._flush_lock:
            with self._buffer_lock:
                batch, self._buffer, self._oldest = self._buffer, [], None
            if not batch and not operation_updates:
                return 0
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
                if also is not None:
                    also()
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

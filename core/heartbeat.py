"""Worker heartbeats: each django-q2 worker process writes one row every few seconds.

The row is written only while the worker reaches everything it needs to run operations: the
database and, if configured, Redis (the task broker and the live-event layer). When either is
lost the worker says so in its log, once, and stops writing, so ``/readyz`` turns red after
``WORKER_HEARTBEAT_STALE_SECONDS``; when it is back, the log says that too.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.dispatch import receiver
from django.utils import timezone
from django_q.signals import post_spawn

from core.health import describe, masked_url, redis_problem
from core.models import WorkerHeartbeat

log = logging.getLogger(__name__)

# Rows of workers gone this long are removed (a restarted worker gets a new pid, hence a new row).
FORGET_AFTER = timedelta(days=1)
# While a dependency stays unreachable, repeat the complaint this often.
REPEAT_COMPLAINT_SECONDS = 60.0


class HeartbeatWriter:
    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.started_at = timezone.now()
        self.problem: str | None = None
        self._complained_at = 0.0
        self._beats = 0

    def problems(self) -> list[str]:
        found = []
        if settings.REDIS_URL:
            problem = redis_problem(settings.REDIS_URL)
            if problem:
                found.append(problem)
        return found

    def beat(self) -> bool:
        """Write the row if every dependency answers; log a change of state. True if written."""
        problems = self.problems()
        if not problems:
            try:
                now = timezone.now()
                WorkerHeartbeat.objects.update_or_create(
                    worker=self.worker,
                    defaults={"host": socket.gethostname(), "pid": os.getpid(), "seen_at": now},
                    create_defaults={
                        "host": socket.gethostname(),
                        "pid": os.getpid(),
                        "seen_at": now,
                        "started_at": self.started_at,
                    },
                )
                if self._beats % 720 == 0:
                    WorkerHeartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()
                self._beats += 1
            except Exception as exc:
                connection.close()  # a dead connection must not be reused by the next beat
                problems.append(f"the database does not answer ({describe(exc)})")
        self._report(problems)
        return not problems

    def _report(self, problems: list[str]) -> None:
        now = time.monotonic()
        if problems:
            text = "; ".join(problems)
            if text != self.problem or now - self._complained_at >= REPEAT_COMPLAINT_SECONDS:
                log.error(
                    "worker %s cannot run operations: %s. Its heartbeat stops until this is fixed (/readyz reports it).",
                    self.worker,
                    text,
                )
                self._complained_at = now
            self.problem = text
        elif self.problem is not None:
            log.warning(
                "worker %s reaches the database%s again; heartbeat resumed",
                self.worker,
                f" and Redis at {masked_url(settings.REDIS_URL)}" if settings.REDIS_URL else "",
            )
            self.problem = None


def _beat_forever(writer: HeartbeatWriter, stop: threading.Event) -> None:
    while True:
        try:
            writer.beat()
        except Exception:  # never let the heartbeat thread die silently
            log.exception("worker %s: heartbeat failed", writer.worker)
        if stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
            return


def worker_identity() -> str:
    # The same identity the runner records on an operation (operations.services.worker_identity).
    return f"{socket.gethostname()}:{os.getpid()}"


def spawned_worker() -> bool:
    """True in a worker process the django-q2 cluster spawned; False when a task runs
    synchronously (``sync=True``) in the caller's own process, which must not get a worker's
    background threads: they would outlive the task and act for a worker that does not exist."""
    return multiprocessing.parent_process() is not None


@receiver(post_spawn)
def start_heartbeat(sender, proc_name, **kwargs) -> None:
    if not spawned_worker():
        return
    writer = HeartbeatWriter(worker_identity())
    thread = threading.Thread(target=_beat_forever, args=(writer, threading.Event()), name="heartbeat", daemon=True)
    thread.start()

"""Worker start-up: reap operations that a dead worker left running (as AWX does) and re-queue
queued operations whose task was lost, then keep doing so in the background, so an orphan is
noticed within a lease and a lost task within a queue timeout even if nobody watches."""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections
from django.dispatch import receiver
from django_q.signals import post_spawn

from core.heartbeat import spawned_worker

log = logging.getLogger(__name__)


def _reap(proc_name: str) -> None:
    from operations.services import reap_operations

    try:
        reaped = reap_operations()
    except Exception:
        log.exception("reaping interrupted operations failed")
        close_old_connections()
        return
    if reaped:
        log.warning("worker %s marked %d orphaned operation(s) interrupted", proc_name, reaped)


def _reap_forever(proc_name: str, stop: threading.Event) -> None:
    # Often enough that a dead worker's operation is interrupted within its lease and a lost
    # queued task is re-queued within about 1.5 queue timeouts.
    interval = max(1.0, min(settings.OPERATION_LEASE_SECONDS, settings.OPERATION_QUEUE_TIMEOUT_SECONDS) / 2)
    while not stop.wait(interval):
        _reap(proc_name)


@receiver(post_spawn)
def reap_on_worker_start(sender, proc_name, **kwargs) -> None:
    if not spawned_worker():
        return
    _reap(proc_name)
    threading.Thread(target=_reap_forever, args=(proc_name, threading.Event()), name="reaper", daemon=True).start()

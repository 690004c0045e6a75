"""Worker start-up: reap operations that a dead worker left running (as AWX does)."""

import logging

from django.dispatch import receiver
from django_q.signals import post_spawn

log = logging.getLogger(__name__)


@receiver(post_spawn)
def reap_on_worker_start(sender, proc_name, **kwargs) -> None:
    from operations.services import reap_operations

    try:
        reaped = reap_operations()
    except Exception:
        log.exception("reaping interrupted operations at worker start failed")
        return
    if reaped:
        log.warning("worker %s marked %d orphaned operation(s) interrupted", proc_name, reaped)

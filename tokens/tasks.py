"""django-q2 entry points (scheduled by migration 0003_schedules)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tokens import sweeps
from tokens.models import TokenSync
from tokens.sync import SYNC_LEASE, sync_cluster

log = logging.getLogger(__name__)


def sweep() -> str:
    report = sweeps.sweep()
    if report.errors:
        log.warning("token sweep: %s", "; ".join(report.errors))
    return str(report)


def sync_due(batch: int = 50) -> str:
    """Sync the clusters whose next sync is due (indexed ``next_sync_at``)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            TokenSync.objects.select_for_update(skip_locked=True)
            .filter(next_sync_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .order_by("next_sync_at")
            .values_list("pk", flat=True)[:batch]
        )
        # Push them out so a second worker does not pick them up; sync_cluster takes its own lease.
        TokenSync.objects.filter(pk__in=ids).update(next_sync_at=now + SYNC_LEASE)
    results = []
    for state in TokenSync.objects.filter(pk__in=ids).select_related("cluster"):
        report = sync_cluster(state.cluster)
        results.append(f"{state.cluster.name}: {report.result}")
        if report.drift:
            log.info("token sync %s: %s", state.cluster.name, "; ".join(report.drift))
    return ", ".join(results) or "nothing due"

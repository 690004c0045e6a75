"""The live Node status of the cluster page's summary: the Nodes read again from the API server
while someone looks, at most once per ``NODE_STATUS_REFRESH_SECONDS`` per cluster.

Costs nothing per viewer. The page's poll (clusters.live, every second, from every open page in
every web process) calls ``request_refresh``, which decides from values already read with the
cluster's row (``fields``) whether a refresh is due; only then does it try to *claim* it with
one conditional UPDATE of the cluster's ``ClusterInventory`` row (due, and no lease running). The
database lets exactly one UPDATE through (SQLite serialises writers; PostgreSQL re-checks the
WHERE on the row a concurrent winner just wrote), so of any number of pages and processes one
queues the refresh, a django-q2 task (``clusters.tasks.refresh_nodes``): the worker, not the web
process, talks to the API server, and a slow or silent API server never holds up a page.

The task runs only with the claim it was queued with (a task that waited in the queue past its
lease, while a later claim queued another, does nothing), only for a cluster whose
``preconditions.running`` holds, and stores the Nodes beside the read-back (``refreshed_nodes``)
or, when the API server cannot be asked, why (``refresh_error``: the typed error's words, which
name the endpoint; never a traceback), keeping the last Nodes read. Each Node keeps its conditions
(``kube.nodes.node_row``): the summary's row and the node page explain a NotReady Node from them
(kubeadm.node_conditions), so they need no API call of their own. A stored row holds no time that
moves while nothing changes (no heartbeat of a healthy condition), so ``rows != refreshed_nodes``
is a real change. The summary's version reads
these columns, so a change reaches every open page through the live parts like any other.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

import kube
from clusters import preconditions
from clusters.models import Cluster, ClusterInventory

log = logging.getLogger(__name__)

# A claim that no task finished within this long (the worker died, the queue lost it) lets the
# next poll claim again. Longer than one list of the Nodes may take (kube.client's 5 s connect
# and 30 s read timeouts), so a slow refresh is never joined by a second one.
LEASE = timedelta(seconds=60)
TASK = "clusters.tasks.refresh_nodes"
# Failure words stored for a page: the typed API error is short; anything longer is cut.
ERROR_MAX_CHARS = 1000


def interval() -> timedelta | None:
    """How often the Nodes are read again while a page is open; None when turned off."""
    seconds = float(settings.NODE_STATUS_REFRESH_SECONDS)
    return timedelta(seconds=seconds) if seconds > 0 else None


def fields() -> dict:
    """The claim's columns read with the cluster's row (clusters.live.clusters): a poll tells
    whether a refresh is due without a query of its own."""
    return {
        "live_refresh_claimed_at": F("inventory__refresh_claimed_at"),
        "live_refresh_lease_until": F("inventory__refresh_lease_until"),
    }


def is_due(claimed_at: datetime | None, lease_until: datetime | None, now: datetime, every: timedelta) -> bool:
    """No refresh holds a lease and the last one was claimed at least ``every`` ago."""
    if lease_until is not None and lease_until > now:
        return False
    return claimed_at is None or claimed_at <= now - every


def may_run(cluster: Cluster) -> bool:
    # From the cluster's own row, no query: the full precondition (which reads the CA row) is
    # asked only once a refresh is claimed, at most once per interval.
    return cluster.is_adopted or cluster.status == Cluster.Status.RUNNING


def claim(cluster: Cluster, *, now: datetime | None = None) -> datetime | None:
    """Take the cluster's next refresh if it is due and nobody holds it: one conditional UPDATE,
    which at most one of any number of concurrent callers wins. Returns the claim (the lease's
    end, which the task is given) or None."""
    every = interval()
    if every is None:
        return None
    now = now or timezone.now()
    lease_until = now + LEASE
    won = (
        ClusterInventory.objects.filter(cluster=cluster)
        .filter(Q(refresh_lease_until__isnull=True) | Q(refresh_lease_until__lte=now))
        .filter(Q(refresh_claimed_at__isnull=True) | Q(refresh_claimed_at__lte=now - every))
        .update(refresh_claimed_at=now, refresh_lease_until=lease_until)
    )
    return lease_until if won else None


def request_refresh(cluster: Cluster, *, now: datetime | None = None) -> bool:
    """From a page or its poll: queue a refresh of the cluster's Nodes if one is due and this
    caller wins the claim. True when it queued one. ``cluster`` comes from clusters.live.clusters()
    (without its annotations the claim's UPDATE alone decides)."""
    every = interval()
    if every is None or not may_run(cluster):
        return False
    now = now or timezone.now()
    if not is_due(
        getattr(cluster, "live_refresh_claimed_at", None),
        getattr(cluster, "live_refresh_lease_until", None),
        now,
        every,
    ):
        return False
    if getattr(cluster, "live_inventory_pk", 0) is None:
        # A running cluster whose read-back never stored a row (rare): the claim needs one.
        ClusterInventory.objects.get_or_create(cluster=cluster)
    lease = claim(cluster, now=now)
    if lease is None:
        return False
    if not preconditions.running(cluster):
        # Claimed all the same, so it is asked again at the next interval, not at every poll.
        ClusterInventory.objects.filter(cluster=cluster, refresh_lease_until=lease).update(refresh_lease_until=None)
        return False
    from django_q.tasks import async_task

    cluster_id = cluster.pk
    # save=False: a refresh every interval per open cluster must not fill the task results table.
    transaction.on_commit(
        lambda: async_task(
            TASK, cluster_id, lease.isoformat(), task_name=f"refresh-nodes-{cluster_id}", save=False, timeout=120
        )
    )
    return True


def refresh(cluster_id: int, lease: str) -> str:
    """The worker's side: read the Nodes and store them (or why not), if the claim is still ours.
    Returns a word for the task's result: refreshed, unchanged, failed, stale, not running."""
    lease_until = parse_datetime(lease)
    inventory = (
        ClusterInventory.objects.select_related("cluster")
        .filter(cluster_id=cluster_id, refresh_lease_until=lease_until)
        .first()
    )
    if inventory is None:
        return "stale"  # another claim replaced this one, or the cluster is gone
    cluster = inventory.cluster
    mine = ClusterInventory.objects.filter(pk=inventory.pk, refresh_lease_until=lease_until)
    if not preconditions.running(cluster):
        mine.update(refresh_lease_until=None)
        return "not running"
    started = timezone.now()
    error = ""
    try:
        rows = kube.list_nodes(cluster)
    except kube.KubeAPIError as exc:
        error = str(exc)
    except Exception as exc:  # a page shows words, never a traceback; the worker's log has it
        log.exception("reading the Nodes of cluster %s failed", cluster.name)
        error = f"reading the Nodes of cluster {cluster.name} failed ({type(exc).__name__}); see the worker's log"
    finished = timezone.now()
    # The next refresh is spaced from the end of this one; the lease is released either way.
    done = {"refresh_claimed_at": finished, "refresh_lease_until": None}
    if error:
        mine.update(refresh_error=error[:ERROR_MAX_CHARS], **done)
        return "failed"
    changed = rows != inventory.refreshed_nodes
    if changed:
        done |= {"refreshed_nodes": rows, "refresh_changed_at": finished}
    mine.update(refreshed_at=started, refresh_error="", **done)
    return "refreshed" if changed else "unchanged"


def refresh_is_newer(refreshed_at: datetime | None, collected_at: datetime | None) -> bool:
    """Whether the live refresh read the Nodes after the last read-back (after init, a join, a
    cordon...) did: then the summary shows the refresh's Nodes, otherwise the read-back's."""
    return refreshed_at is not None and (collected_at is None or refreshed_at > collected_at)


def shown_nodes(inventory: ClusterInventory | None) -> tuple[list[dict], datetime | None, bool]:
    """The Nodes the summary shows, when they were read, and whether they are the refresh's."""
    if inventory is None:
        return [], None, False
    if refresh_is_newer(inventory.refreshed_at, inventory.collected_at):
        return inventory.refreshed_nodes, inventory.refreshed_at, True
    return inventory.api_nodes, inventory.collected_at, False

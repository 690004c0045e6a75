"""Each cluster's health at a glance, for the cluster list: nodes Ready of all (as the API server
last reported them, to a read-back or to the live refresh of an open cluster page), the soonest certificate expiry, and a running or stopped operation.

Read for the whole list in a fixed number of queries (the clusters with their annotations, then
the read-back certificates of all of them), never one more per cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time

from django.db.models import Count, Min, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from clusters import nodestatus
from clusters.models import CertificateAuthority, MachineInventory
from operations.models import Operation


@dataclass(frozen=True)
class Expiry:
    what: str  # "CA ca", "apiserver on node1"
    at: datetime


@dataclass(frozen=True)
class Health:
    cluster: object
    nodes_ready: int | None  # None: nothing read back from the API server yet
    nodes_total: int
    machines: int
    certificate: Expiry | None
    running: Operation | None  # the newest running or queued operation
    running_count: int
    stopped: Operation | None  # the newest operation, when it failed, was interrupted or cancelled

    @property
    def all_ready(self) -> bool:
        return self.nodes_ready is not None and self.nodes_ready == self.nodes_total

    @property
    def others_running(self) -> int:
        return max(self.running_count - 1, 0)


def leaf_expiries(rows: Iterable[dict], node: str) -> list[Expiry]:
    """The expiries of the certificates read from a control plane (kubeadm.readback rows); the
    kubelet's own client certificate rotates itself and is left out."""
    found = []
    for row in rows:
        if row.get("kind") not in ("leaf", "kubeconfig") or str(row.get("path", "")).endswith("kubelet.conf"):
            continue
        at = _instant(row.get("not_after") or "")
        if at is not None:
            found.append(Expiry(f"{row.get('name') or row.get('path')} on {node}", at))
    return found


def _instant(text: str) -> datetime | None:
    """A row's ``not_after``: kubeadm.readback writes an ISO time in UTC with its offset; a time
    without one, or a bare date, is read as UTC."""
    try:
        at = parse_datetime(text)
        if at is None and (day := parse_date(text)) is not None:
            at = datetime.combine(day, time())
    except ValueError:  # well-formed but impossible, e.g. month 13
        return None
    if at is not None and timezone.is_naive(at):
        at = timezone.make_aware(at, UTC)
    return at


def _operation_fields() -> dict:
    newest = Operation.objects.filter(cluster=OuterRef("pk")).order_by("-created_at", "-id")
    running = newest.filter(status__in=Operation.ACTIVE_STATUSES)
    count = (
        Operation.objects.filter(cluster=OuterRef("pk"), status__in=Operation.ACTIVE_STATUSES)
        .order_by()
        .values("cluster")
        .annotate(n=Count("pk"))
        .values("n")
    )
    soonest_ca = (
        CertificateAuthority.objects.filter(cluster=OuterRef("pk"), not_after__isnull=False)
        .order_by()
        .values("cluster")
        .annotate(soonest=Min("not_after"))
        .values("soonest")
    )
    soonest_ca_name = CertificateAuthority.objects.filter(cluster=OuterRef("pk"), not_after__isnull=False).order_by(
        "not_after"
    )
    return {
        "health_newest_pk": Subquery(newest.values("pk")[:1]),
        "health_newest_kind": Subquery(newest.values("kind")[:1]),
        "health_newest_status": Subquery(newest.values("status")[:1]),
        "health_running_pk": Subquery(running.values("pk")[:1]),
        "health_running_kind": Subquery(running.values("kind")[:1]),
        "health_running_status": Subquery(running.values("status")[:1]),
        "health_running_count": Subquery(count),
        "health_ca_expiry": Subquery(soonest_ca),
        "health_ca_name": Subquery(soonest_ca_name.values("name")[:1]),
        # The one join of the query (the rest are subqueries), so the count is not multiplied.
        "health_machines": Count("nodes"),
    }


def with_health(clusters: QuerySet) -> QuerySet:
    """``clusters`` with what :func:`health` reads from each row."""
    return clusters.select_related("inventory").annotate(**_operation_fields())


def health(clusters: Iterable) -> list[Health]:
    """The health of each cluster of ``clusters`` (from :func:`with_health`), in their order."""
    clusters = list(clusters)
    leaves: dict[int, list[Expiry]] = {}
    read_back = MachineInventory.objects.filter(node__cluster__in=[c.pk for c in clusters]).values_list(
        "node__cluster_id", "node__name", "certificates"
    )
    for cluster_id, node, rows in read_back:
        leaves.setdefault(cluster_id, []).extend(leaf_expiries(rows or [], node))
    result = []
    for cluster in clusters:
        # No read-back yet: the reverse one-to-one raises an AttributeError subclass.
        inventory = getattr(cluster, "inventory", None)
        # The same Nodes the cluster page's summary shows: the live refresh's when it is newer.
        rows, read_at, _ = nodestatus.shown_nodes(inventory)
        api_nodes = rows if read_at is not None else None
        candidates = list(leaves.get(cluster.pk, []))
        if cluster.health_ca_expiry is not None:
            candidates.append(Expiry(f"CA {cluster.health_ca_name}", cluster.health_ca_expiry))
        running = stopped = None
        if cluster.health_running_pk is not None:
            running = Operation(
                pk=cluster.health_running_pk, kind=cluster.health_running_kind, status=cluster.health_running_status
            )
        if cluster.health_newest_status in Operation.RESUMABLE_STATUSES:
            stopped = Operation(
                pk=cluster.health_newest_pk, kind=cluster.health_newest_kind, status=cluster.health_newest_status
            )
        result.append(
            Health(
                cluster=cluster,
                nodes_ready=sum(1 for row in api_nodes if row.get("ready")) if api_nodes is not None else None,
                nodes_total=len(api_nodes) if api_nodes is not None else 0,
                machines=cluster.health_machines or 0,
                certificate=min(candidates, key=lambda expiry: expiry.at, default=None),
                running=running,
                running_count=cluster.health_running_count or 0,
                stopped=stopped,
            )
        )
    return result

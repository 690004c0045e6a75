"""The top of the cluster page: the cluster at a glance (clusters/_summary.html, a live part).

Its machines with what the API server says of each (Ready and, when not, why in a few words from
its conditions — nodes.kubernetes_status —, cordoned, kubelet version, roles:
read again while the page is open, clusters.nodestatus, or else the last read-back; cordon,
uncordon and drain for operators), the operations in progress or the last one if it stopped, and the soonest
expiry of a certificate and of a bootstrap token. In workflows/ because it reads the machines,
the tokens and the day-two certificate reports beside the cluster's own rows.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Min, OuterRef, Subquery
from django.utils import timezone

from clusters import nodestatus
from clusters.health import Expiry, leaf_expiries
from clusters.models import Cluster, ClusterInventory, MachineInventory
from core.formatting import relative_text
from nodes.kubernetes_status import headline
from nodes.models import Node
from operations.models import Operation
from tokens.models import BootstrapToken
from workflows.models import CertificateReport
from workflows.scheduling import CORDON, DRAIN, UNCORDON


def _node_rows(cluster: Cluster, api_nodes: list[dict]) -> list[dict]:
    """One row per machine, with the API server's view of the Node of the same name; then the
    Nodes the API server lists that are no machine of Kubeboard's (an adopted cluster's)."""
    by_name = {row.get("name"): row for row in api_nodes}
    rows = []
    for node in cluster.nodes.order_by("name"):
        api = by_name.pop(node.name, None)
        rows.append(
            {"machine": node, "name": node.name, "api": api, "why": headline(api), "actions": _actions(node, api)}
        )
    rows += [
        {"machine": None, "name": name, "api": row, "why": headline(row), "actions": ()}
        for name, row in sorted(by_name.items())
    ]
    return rows


def _actions(node: Node, api: dict | None) -> tuple[str, ...]:
    """What an operator may do to a joined machine's Node (workflows.scheduling): cordon or
    uncordon, whichever changes it, and drain."""
    if api is None or node.status != Node.Status.JOINED:
        return ()
    return (UNCORDON if api.get("unschedulable") else CORDON, DRAIN)


def soonest_certificate(cluster: Cluster) -> Expiry | None:
    """The certificate that expires first: a CA Kubeboard holds or one read from a control plane
    (by the read-back or the day-two certificate inventory)."""
    candidates = [
        Expiry(f"CA {ca.name}", ca.not_after)
        for ca in cluster.authorities.exclude(not_after=None).only("name", "not_after")
    ]
    for inventory in MachineInventory.objects.filter(node__cluster=cluster).select_related("node"):
        candidates += leaf_expiries(inventory.certificates, inventory.node.name)
    for report in CertificateReport.objects.filter(node__cluster=cluster).select_related("node"):
        candidates += leaf_expiries(report.rows, report.node.name)
    return min(candidates, key=lambda expiry: expiry.at, default=None)


def soonest_token(cluster: Cluster, now: datetime | None = None) -> Expiry | None:
    """The active bootstrap token that expires first."""
    now = now or timezone.now()
    token = (
        BootstrapToken.objects.filter(cluster=cluster, status=BootstrapToken.Status.ACTIVE, expires_at__gt=now)
        .order_by("expires_at")
        .only("token_id", "expires_at")
        .first()
    )
    return Expiry(f"token {token.token_id}", token.expires_at) if token else None


def cluster_summary(cluster: Cluster) -> dict:
    inventory = ClusterInventory.objects.filter(cluster=cluster).first()
    operations = cluster.operations.select_related("requested_by").order_by("-created_at", "-id")
    latest = operations.first()
    api_nodes, read_at, refreshed = nodestatus.shown_nodes(inventory)
    every = nodestatus.interval() if nodestatus.may_run(cluster) else None
    return {
        "summary_nodes": _node_rows(cluster, api_nodes),
        "summary_inventory": inventory,
        "summary_read_at": read_at,
        "summary_refreshed": refreshed,
        # Read again while the page is open (clusters.nodestatus), or only at read-backs.
        "summary_refresh_seconds": every.total_seconds() if every and inventory else None,
        "summary_refresh_error": inventory.refresh_error if inventory and every else "",
        "summary_running": list(operations.filter(status__in=Operation.ACTIVE_STATUSES)),
        "summary_stopped": latest if latest is not None and latest.is_resumable else None,
        "summary_certificate": soonest_certificate(cluster),
        "summary_token": soonest_token(cluster),
    }


def panel(cluster: Cluster, user) -> dict:
    return cluster_summary(cluster)


def fields() -> dict:
    """The soonest token expiry, read with the cluster's row: its "in 3 h" moves with the clock.
    And the live Node status's columns (clusters.nodestatus): a refresh that found the Nodes
    changed, or could not read them, changes the version."""
    now = timezone.now()
    tokens = BootstrapToken.objects.filter(
        cluster=OuterRef("pk"), status=BootstrapToken.Status.ACTIVE, expires_at__gt=now
    ).order_by()
    soonest = tokens.values("cluster").annotate(soonest=Min("expires_at")).values("soonest")
    return {
        "live_soonest_token": Subquery(soonest),
        "live_refreshed_at": F("inventory__refreshed_at"),
        "live_refresh_changed_at": F("inventory__refresh_changed_at"),
        "live_refresh_error": F("inventory__refresh_error"),
    }


def version(cluster: Cluster) -> tuple:
    """Machines, operations, tokens and the read-back are in the versions of the parts this one is
    listed after (clusters.panels.LIVE_PARTS); the clock moves the token's countdown.

    Of the live Node status: when the refreshed Nodes last differed, the failure, and which of
    the read-back and the refresh is newer (the one shown; the read-back's "3 min ago" is in the
    inventory's version): not the refresh's own time, which moves at every refresh while nothing
    shown changes."""
    return (
        cluster.live_soonest_token,
        relative_text(cluster.live_soonest_token),
        cluster.live_refresh_changed_at,
        cluster.live_refresh_error,
        nodestatus.refresh_is_newer(cluster.live_refreshed_at, cluster.live_inventory_collected_at),
    )

"""What the API server says of a machine's Node, explained (kubeadm.node_conditions): the node
page's "In Kubernetes" part and the short reason of the cluster page's node rows.

Read from what is stored, never from the API server per request: the Nodes of the last read-back
or of the live refresh while a cluster page is open (clusters.nodestatus.shown_nodes), whichever
is newer; both keep each Node's conditions (kube.nodes.node_row).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from addons import catalog
from clusters import nodestatus
from clusters.models import Cluster, ClusterInventory, MachineInventory
from core.formatting import relative_text
from kubeadm import node_conditions
from kubeadm.node_conditions import Explanation
from nodes.models import Node

# The explanations whose fix is done on the cluster page's Pod network part.
_POD_NETWORK_FIXES = ("pod-network", "network-unavailable")


@dataclass(frozen=True)
class ShownExplanation:
    explanation: Explanation
    link: str  # the page where the fix is done ("" when it is done on the machine)
    since: datetime | None  # the condition's lastTransitionTime
    heartbeat: datetime | None  # when the kubelet last posted, for an Unknown condition


def instant(text: str) -> datetime | None:
    """A stored condition time (ISO 8601 from the API server), None when absent or unreadable."""
    try:
        at = parse_datetime(text) if text else None
    except ValueError:  # well-formed but impossible, e.g. month 13
        return None
    return at if at is not None and timezone.is_aware(at) else None


def pod_network_words(cluster: Cluster) -> str:
    """The add-on Kubeboard last rolled out on the cluster ("Flannel v0.28.9"), "" if none."""
    network, _, version = (cluster.pod_network_applied or "").partition(" ")
    if not network:
        return ""
    return f"{catalog.NETWORK_LABELS.get(network, network)} {version}".strip()


def headline(row: dict | None) -> str:
    """The cluster page's short reason for a Node's row ("no pod network", "disk pressure"); "" when
    all is well. Without the clock or anything but the row, so the live summary is redrawn only
    when the stored Nodes change."""
    if not isinstance(row, dict):
        return ""
    return node_conditions.headline(row)


def _kubelet_certificate_expired(node: Node, now: datetime) -> str:
    """When the kubelet client certificate read back from the machine expired ("3 days ago"), ""
    if it has not or was never read (the read-back reads control-plane machines only)."""
    inventory = MachineInventory.objects.filter(node=node).only("certificates").first()
    rows = inventory.certificates if inventory is not None and isinstance(inventory.certificates, list) else []
    for row in rows:
        if not isinstance(row, dict) or not str(row.get("path", "")).endswith("kubelet.conf"):
            continue
        not_after = instant(str(row.get("not_after") or ""))
        if not_after is not None and not_after <= now:
            return relative_text(not_after, now)
    return ""


def node_status(node: Node, *, now: datetime | None = None) -> dict:
    """The node page's part: the stored Node (or None), when it was read, its conditions and what
    is wrong with it, each with the page where it is fixed."""
    now = now or timezone.now()
    cluster = node.cluster
    inventory = ClusterInventory.objects.filter(cluster=cluster).first()
    rows, read_at, refreshed = nodestatus.shown_nodes(inventory)
    row = next((r for r in rows if isinstance(r, dict) and r.get("name") == node.name), None)
    if row is None:
        return {"api": None, "read_at": read_at, "refreshed": refreshed}
    found = node_conditions.explain(
        row,
        pod_network=pod_network_words(cluster),
        endpoint=cluster.control_plane_endpoint,
        kubelet_certificate_expired=_kubelet_certificate_expired(node, now),
    )
    pod_network_page = reverse("clusters:detail", args=[cluster.name]) + "#pod-network"
    return {
        "api": row,
        "read_at": read_at,
        "refreshed": refreshed,
        "conditions": [{**item, "since_at": instant(item["since"])} for item in node_conditions.conditions(row)],
        "explanations": [
            ShownExplanation(
                item,
                pod_network_page if item.code in _POD_NETWORK_FIXES else "",
                instant(item.since),
                instant(item.heartbeat),
            )
            for item in found
        ],
    }

from __future__ import annotations

from core.formatting import relative_text
from nodes.services import cluster_public_key


def cluster_panel(cluster, user) -> dict:
    return {"nodes": cluster.nodes.all(), "cluster_key": cluster_public_key(cluster)}


def node_list_version(cluster) -> list:
    """What the node list shows, read in one query (the cluster page polls it)."""
    fields = ("name", "address", "ssh_port", "ssh_user", "credential", "role", "status", "checked_at")
    rows = cluster.nodes.only("cluster", *fields, "ssh_host_key", "offered_host_key")
    return [
        (node.pk, *(getattr(node, field) for field in fields), node.host_key_state, relative_text(node.checked_at))
        for node in rows
    ]

from __future__ import annotations

from nodes.services import cluster_public_key


def cluster_panel(cluster, user) -> dict:
    return {"nodes": cluster.nodes.all(), "cluster_key": cluster_public_key(cluster)}

from __future__ import annotations


def cluster_panel(cluster, user) -> dict:
    return {"nodes": cluster.nodes.all()}

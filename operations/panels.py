from __future__ import annotations


def cluster_panel(cluster, user) -> dict:
    return {"operations": cluster.operations.select_related("requested_by")[:50]}

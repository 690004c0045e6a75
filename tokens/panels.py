from __future__ import annotations


def cluster_panel(cluster, user) -> dict:
    return {"tokens": cluster.tokens.select_related("node", "created_by")}

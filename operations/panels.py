from __future__ import annotations

from core.formatting import relative_text

SHOWN = 50


def cluster_panel(cluster, user) -> dict:
    return {"operations": cluster.operations.select_related("requested_by")[:SHOWN]}


def cluster_panel_version(cluster) -> list:
    """What the operations table shows, read in one query (the cluster page polls it)."""
    rows = cluster.operations.values_list(
        "pk", "kind", "status", "requested_by__username", "created_at", "started_at", "finished_at"
    )[:SHOWN]
    return [(*row, relative_text(row[4])) for row in rows]

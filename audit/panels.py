from __future__ import annotations

from audit.queries import visible_records

RECENT = 20


def cluster_panel(cluster, user) -> dict:
    """The newest records of the cluster; the full history is one link away."""
    records = visible_records(user).filter(cluster_id=cluster.pk).order_by("-id")[:RECENT]
    return {"audit_events": list(records)}

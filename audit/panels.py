from __future__ import annotations

from audit.queries import newest, visible_records

RECENT = 20


def cluster_panel(cluster, user) -> dict:
    """The newest records of the cluster; the full history is one link away."""
    return {"audit_events": newest(visible_records(user).filter(cluster_id=cluster.pk), size=RECENT)}

from __future__ import annotations

from audit.models import AuditEvent


def cluster_panel(cluster, user) -> dict:
    return {"audit_events": AuditEvent.objects.filter(cluster=cluster).select_related("actor")[:100]}

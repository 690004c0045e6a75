"""Entry points that django-q2 workers import by dotted path."""

from __future__ import annotations


def refresh_nodes(cluster_id: int, lease: str) -> str:
    """The live Node status of an open cluster page (clusters.nodestatus)."""
    from clusters.nodestatus import refresh

    return refresh(cluster_id, lease)

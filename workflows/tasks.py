"""django-q2 entry points (scheduled every minute by migration 0002_schedules)."""

from __future__ import annotations

import logging

from workflows import backup, certificates

log = logging.getLogger(__name__)


def due() -> str:
    """Start the scheduled etcd snapshots and certificate checks that are due."""
    snapshots = backup.due_backups()
    checks = certificates.due_renewal_checks()
    return f"{len(snapshots)} snapshot(s), {len(checks)} certificate check(s) started"

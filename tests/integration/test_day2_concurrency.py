"""Day-two schedules under concurrent workers, on SQLite and on PostgreSQL (bin/test runs both):
every worker runs the "daytwo: due" schedule each minute, so two may look at the same due
schedule at once — it must start exactly one snapshot (and one certificate check)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.models import Cluster
from kubeadm import pki
from nodes.models import Node
from operations.models import Operation
from tests.factories import make_cluster
from tests.integration.test_concurrency import in_threads
from tests.support.kubeclusters import store_authorities
from workflows import backup, certificates
from workflows.models import BackupSchedule, RenewalPolicy

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_due_schedule_and_policy_start_once_whatever_the_number_of_workers():
    # Initialized and in Kubeboard's custody: schedules start nothing on a cluster that cannot answer.
    cluster = make_cluster(status=Cluster.Status.RUNNING)
    store_authorities(cluster, {"ca": pki.generate_ca("kubernetes", "ECDSA-P256")})
    Node.objects.create(
        cluster=cluster,
        name="cp1",
        address="10.0.0.21",
        role=Node.Role.CONTROL_PLANE,
        status=Node.Status.JOINED,
        ssh_host_key="ssh-ed25519 AAAA",
        ssh_host_key_fingerprint="SHA256:x",
    )
    past = timezone.now() - timedelta(minutes=1)
    BackupSchedule.objects.create(cluster=cluster, enabled=True, interval_hours=1, keep=3, next_run_at=past)
    RenewalPolicy.objects.create(cluster=cluster, enabled=True, renew_below_days=30, next_check_at=past)

    def due(index: int) -> tuple[int, int]:
        return len(backup.due_backups()), len(certificates.due_renewal_checks())

    results = in_threads(4, due)
    assert sum(s for s, _ in results) == 1 and sum(c for _, c in results) == 1, results
    assert Operation.objects.filter(kind=backup.SNAPSHOT_KIND).count() == 1
    assert Operation.objects.filter(kind=certificates.INVENTORY_KIND).count() == 1

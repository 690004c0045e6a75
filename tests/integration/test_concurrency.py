"""Concurrency rules that must hold on SQLite and on PostgreSQL (bin/test runs both).

Threads each use their own database connection, as separate worker processes would.
"""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from audit.services import record, verify_chain
from operations.events import EventWriter, LeaseLost
from operations.models import Event, Operation
from operations.runner import _claim
from operations.services import interrupt
from tests.factories import make_cluster
from tests.support.threads import in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_audit_chain_stays_linear_under_concurrent_writers():
    def write(index: int) -> None:
        for n in range(15):
            record("test.concurrent", details={"writer": index, "n": n})

    in_threads(6, write)
    assert AuditEvent.objects.count() == 90
    assert verify_chain() == []
    assert len(set(AuditEvent.objects.values_list("prev_hash", flat=True))) == 90, "no two records share a parent"


def test_only_one_operation_per_cluster_runs():
    cluster = make_cluster()
    operations = [Operation.objects.create(cluster=cluster, kind="prepare-identity") for _ in range(4)]

    def claim(index: int):
        operation, reason = _claim(operations[index].pk, f"worker-{index}:1")
        return operation is not None

    claimed = in_threads(4, claim)
    assert claimed.count(True) == 1
    assert Operation.objects.filter(status=Operation.Status.RUNNING).count() == 1


def test_the_same_operation_is_claimed_once():
    cluster = make_cluster()
    operation = Operation.objects.create(cluster=cluster, kind="prepare-identity")
    claimed = in_threads(4, lambda index: _claim(operation.pk, f"worker-{index}:1")[0] is not None)
    assert claimed.count(True) == 1


def test_reaper_and_runner_never_write_the_same_sequence_number():
    cluster = make_cluster()
    operation = Operation.objects.create(
        cluster=cluster, kind="prepare-identity", status=Operation.Status.RUNNING, worker="slow:1"
    )
    writer = EventWriter(operation, flush_count=5, flush_seconds=60, on_publish=lambda *a: None)
    outcome = {}

    def runner(index: int) -> None:
        try:
            for n in range(500):
                writer.emit(f"line {n}")
            writer.flush()
            outcome["runner"] = "finished"
        except LeaseLost:
            outcome["runner"] = "lease lost"

    def reaper(index: int) -> None:
        interrupt(Operation.objects.get(pk=operation.pk), "test: worker declared dead")

    in_threads(2, lambda index: runner(index) if index == 0 else reaper(index))
    seqs = list(Event.objects.filter(operation=operation).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)), "one contiguous sequence, whoever wrote last"
    operation.refresh_from_db()
    assert operation.status == Operation.Status.INTERRUPTED
    assert operation.last_seq == seqs[-1]
    assert Event.objects.filter(operation=operation, kind=Event.Kind.STATUS, data__status="interrupted").count() == 1


def test_the_live_node_status_is_refreshed_by_one_of_many_pollers():
    """clusters.nodestatus: pages polling in several processes at once, each having read the
    cluster's row (a refresh due) before any claimed it: one claim, one task queued."""
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import OrmQ

    from clusters import live, nodestatus
    from clusters.models import Cluster, ClusterInventory
    from kubeadm import pki
    from tests.support.kubeclusters import store_authorities

    cluster = make_cluster("polled", status=Cluster.Status.RUNNING)
    store_authorities(cluster, {"ca": pki.generate_ca("kubernetes", "ECDSA-P256")})
    ClusterInventory.objects.create(cluster=cluster, collected_at=timezone.now() - timedelta(minutes=3))
    rows = [live.clusters().get(pk=cluster.pk) for _ in range(8)]
    assert all(row.live_refresh_claimed_at is None for row in rows), "every poller sees it due"

    queued = in_threads(8, lambda index: nodestatus.request_refresh(rows[index]))
    assert queued.count(True) == 1, queued
    # The embedded broker (bin/test's passes run without Redis): the queue is a table.
    tasks = [q.task["args"] for q in OrmQ.objects.all() if q.task.get("func") == nodestatus.TASK]
    inventory = ClusterInventory.objects.get(cluster=cluster)
    assert tasks == [(cluster.pk, inventory.refresh_lease_until.isoformat())]

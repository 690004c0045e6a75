"""The operation pipeline run in-process: phases, events, identity, failure, resume, reaping."""

from datetime import timedelta

import pytest
from cryptography import x509
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ

from audit.models import AuditEvent
from clusters.models import Cluster
from clusters.services import create_cluster
from kubeadm import discovery
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION
from operations.events import EventWriter, LeaseLost
from operations.models import Event, Operation, PhaseRun
from operations.runner import run_operation
from operations.services import reap_operations, resume_operation
from tests.factories import make_cluster

pytestmark = pytest.mark.postgres


def new_cluster(**fields) -> Cluster:
    values = {
        "name": "c1",
        "kubernetes_version": DEFAULT_KUBERNETES_VERSION,
        "control_plane_endpoint": "10.0.0.10:6443",
        "pod_subnet": "10.244.0.0/16",
    }
    values.update(fields)
    return Cluster(**values)


@pytest.mark.django_db(transaction=True)
def test_task_is_queued_only_after_commit(operator):
    with transaction.atomic():
        operation = create_cluster(new_cluster(), user=operator)
        assert OrmQ.objects.count() == 0, "nothing may be queued before the operation row commits"
    assert OrmQ.objects.count() == 1
    assert operation.status == Operation.Status.QUEUED
    assert list(operation.phases.values_list("name", flat=True)) == [
        "validate-config",
        "certificate-authorities",
        "ca-pin",
        "render-config",
    ]
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "cluster.created",
        "operation.queued",
    ]


@pytest.mark.django_db(transaction=True)
def test_identity_operation_succeeds(operator):
    operation = create_cluster(new_cluster(encryption_algorithm="ECDSA-P256"), user=operator)
    assert run_operation(operation.pk) == "succeeded"
    operation.refresh_from_db()
    cluster = operation.cluster
    cluster.refresh_from_db()
    assert operation.status == Operation.Status.SUCCEEDED
    assert set(operation.phases.values_list("status", flat=True)) == {PhaseRun.Status.SUCCEEDED}
    seqs = list(operation.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert operation.last_seq == seqs[-1]
    assert cluster.status == Cluster.Status.READY
    assert set(cluster.authorities.values_list("name", flat=True)) == {"ca", "front-proxy-ca", "etcd/ca", "sa"}
    ca = cluster.authorities.get(name="ca")
    cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    assert cluster.ca_pin_hash == discovery.ca_pin_hash(cert)
    assert cluster.ca_pin_hash.startswith("sha256:") and len(cluster.ca_pin_hash) == 71
    assert ca.subject == "CN=kubernetes"
    assert "-----BEGIN" in ca.private_key.reveal()
    assert "kind: ClusterConfiguration" in cluster.kubeadm_config
    assert "podSubnet: 10.244.0.0/16" in cluster.kubeadm_config
    assert "encryptionAlgorithm: ECDSA-P256" in cluster.kubeadm_config
    assert AuditEvent.objects.filter(action="operation.succeeded", cluster=cluster).exists()
    # The event log never carries a private key.
    assert not operation.events.filter(message__contains="PRIVATE KEY").exists()


@pytest.mark.django_db(transaction=True)
def test_failed_phase_then_resume(operator):
    # Saved without the form (as an import or an older release might), so the runner must catch it.
    operation = create_cluster(new_cluster(pod_subnet="10.96.0.0/16"), user=operator)
    assert run_operation(operation.pk) == "failed"
    operation.refresh_from_db()
    assert operation.status == Operation.Status.FAILED
    assert "does not overlap serviceSubnet" in operation.error
    phase = operation.phases.get(name="validate-config")
    assert phase.status == PhaseRun.Status.FAILED and "overlap" in phase.error
    assert operation.phases.filter(status=PhaseRun.Status.PENDING).count() == 3
    assert Cluster.objects.get(pk=operation.cluster_id).status == Cluster.Status.FAILED
    failed_last_seq = operation.last_seq

    Cluster.objects.filter(pk=operation.cluster_id).update(pod_subnet="10.244.0.0/16")
    resume_operation(operation, user=operator)
    assert run_operation(operation.pk) == "succeeded"
    operation.refresh_from_db()
    seqs = list(operation.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)), "resume continues the sequence without gaps or repeats"
    assert seqs[-1] > failed_last_seq
    assert Cluster.objects.get(pk=operation.cluster_id).status == Cluster.Status.READY
    assert AuditEvent.objects.filter(action="operation.resumed").count() == 1


@pytest.mark.django_db(transaction=True)
def test_authorities_are_not_replaced_on_rerun(operator):
    operation = create_cluster(new_cluster(), user=operator)
    run_operation(operation.pk)
    ca_before = operation.cluster.authorities.get(name="ca").fingerprint_sha256
    from operations.services import start_operation

    second = start_operation(operation.cluster, "prepare-identity")
    assert run_operation(second.pk) == "succeeded"
    assert operation.cluster.authorities.get(name="ca").fingerprint_sha256 == ca_before
    assert second.events.filter(message__contains="already exist").exists()


@pytest.mark.django_db(transaction=True)
def test_stale_lease_is_reaped_and_writer_stops(operator, settings):
    cluster = make_cluster()
    operation = Operation.objects.create(
        cluster=cluster,
        kind="prepare-identity",
        status=Operation.Status.RUNNING,
        worker="elsewhere:1",
        heartbeat_at=timezone.now() - timedelta(seconds=settings.OPERATION_LEASE_SECONDS + 5),
        current_phase="certificate-authorities",
    )
    # Not an idempotent phase: the operation stays interrupted until a person resumes it.
    PhaseRun.objects.create(
        operation=operation, name="certificate-authorities", order=0, status=PhaseRun.Status.RUNNING
    )
    writer = EventWriter(operation)
    assert reap_operations() == 1
    operation.refresh_from_db()
    assert operation.status == Operation.Status.INTERRUPTED
    assert "stopped renewing its lease" in operation.error and "certificate-authorities" in operation.error
    assert operation.phases.get().status == PhaseRun.Status.FAILED
    kinds = list(operation.events.values_list("kind", flat=True))
    assert kinds == [Event.Kind.PHASE, Event.Kind.STATUS]
    assert AuditEvent.objects.filter(action="operation.interrupted").exists()
    # The old runner, if it was only slow, can no longer write: its lease is gone.
    writer.emit("late line")
    with pytest.raises(LeaseLost):
        writer.flush()
    assert not operation.events.filter(message="late line").exists()


@pytest.mark.django_db(transaction=True)
def test_live_worker_is_not_reaped():
    cluster = make_cluster()
    Operation.objects.create(
        cluster=cluster,
        kind="prepare-identity",
        status=Operation.Status.RUNNING,
        worker="elsewhere:1",
        heartbeat_at=timezone.now(),
    )
    assert reap_operations() == 0


@pytest.mark.django_db(transaction=True)
def test_operation_waits_for_the_cluster_lock(operator, monkeypatch):
    from operations import services
    from operations.services import start_operation

    first = create_cluster(new_cluster(), user=operator)
    Operation.objects.filter(pk=first.pk).update(
        status=Operation.Status.RUNNING, worker="other:1", heartbeat_at=timezone.now()
    )
    second = start_operation(first.cluster, "prepare-identity")
    # The task returns at once (it must not hold a worker process) and the operation stays queued.
    assert run_operation(second.pk) == f"waiting for operation #{first.pk}"
    assert Operation.objects.get(pk=second.pk).status == Operation.Status.QUEUED
    # When the first ends, it queues the waiting one's task again.
    woken = []
    monkeypatch.setattr(services, "enqueue", lambda operation: woken.append(operation.pk))
    first.refresh_from_db()
    assert services.interrupt(first, "the worker is gone")
    assert woken == [second.pk]
    assert run_operation(second.pk) == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_events_are_batched_but_none_lost(operator):
    cluster = make_cluster()
    operation = Operation.objects.create(
        cluster=cluster, kind="prepare-identity", status=Operation.Status.RUNNING, worker="w:1"
    )
    published = []
    writer = EventWriter(
        operation, flush_count=50, flush_seconds=60, on_publish=lambda op, events: published.append(events)
    )
    for index in range(120):
        writer.emit(f"line {index}\x00")
    assert Event.objects.filter(operation=operation).count() == 100, "two full batches of 50 are flushed by count"
    writer.flush()
    assert [len(batch) for batch in published] == [50, 50, 20]
    assert list(Event.objects.filter(operation=operation).values_list("seq", flat=True)) == list(range(1, 121))
    assert Event.objects.get(operation=operation, seq=1).message == "line 0", "NUL is stripped (PostgreSQL refuses it)"

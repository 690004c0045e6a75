"""Deleting an artifact set while a Prepare that uses it is queued at the same moment, from two
database connections (as a web process and another web or worker process would): the Prepare is
either seen and the deletion refused, or queued only once the set is gone, and then its first
step refuses saying no set is held. Never a Prepare that saw the set running against deleted
files. On SQLite (one writer at a time) and on PostgreSQL (bin/test's PostgreSQL pass), where the
ordering comes from the audit chain's head lock: the deletion appends its record first, and
queueing an operation appends its operation.queued record in the same transaction.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from django.db import connection, transaction
from django.utils import timezone

from artifacts import services
from artifacts.models import ArtifactSet
from artifacts.services import DeleteRefused, delete_set, find_set, import_directory
from audit.models import AuditEvent
from core.phases import PhaseError
from kubeadm import prepare as knowledge
from nodes.models import Node
from operations.models import Operation
from tests.factories import make_cluster
from tests.support import prepare_bed
from tests.support.threads import in_threads
from workflows.artifact_uses import find_uses
from workflows.models import MachinePreparation, PrepareSettings
from workflows.prepare import start_prepare
from workflows.prepare_steps import _artifact_set

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NAME = "v1.37.2-amd64"


@pytest.fixture
def world(tmp_path, settings):
    """A cluster preparing from artifact sets with one machine already prepared (so only a new
    Prepare can make the set needed), and the set imported."""
    settings.ARTIFACTS_DIR = tmp_path / "store"
    held = import_directory(prepare_bed.artifact_set(tmp_path / "set"))
    cluster = make_cluster("air", kubernetes_version="v1.37.2")
    PrepareSettings.objects.create(cluster=cluster, source=PrepareSettings.Source.ARTIFACTS)
    node = Node.objects.create(
        cluster=cluster,
        name="m1",
        address="10.0.0.61",
        status=Node.Status.REACHABLE,
        ssh_host_key="ssh-ed25519 AAAA",
        ssh_host_key_fingerprint="SHA256:x",
    )
    MachinePreparation.objects.create(
        node=node,
        facts={"architecture": "amd64"},
        source=PrepareSettings.Source.ARTIFACTS,
        kubernetes_version="v1.37.2",
        prepared_at=timezone.now(),
    )
    assert not [use for use in find_uses(held) if use.blocking]
    return SimpleNamespace(set=held, cluster=cluster, node=node, store=settings.ARTIFACTS_DIR)


def _until_another_connection_waits(seconds: float = 20.0) -> None:
    """Return once another connection waits for a lock (PostgreSQL: pg_stat_activity says so), or
    after a pause on SQLite, whose writers wait inside the library where nothing shows it."""
    if connection.vendor != "postgresql":
        time.sleep(1.0)
        return
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else read once per transaction
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the other connection never waited for a lock")


def _seq(action: str) -> int:
    return AuditEvent.objects.get(action=action).seq


def test_a_prepare_queued_first_is_seen_and_the_deletion_refused(world):
    queued = threading.Event()
    outcome: dict = {}

    def prepare() -> None:
        with transaction.atomic():  # queued, not committed yet, while the deletion starts
            outcome["operation"] = start_prepare(world.cluster, [world.node])
            queued.set()
            _until_another_connection_waits()

    def delete() -> None:
        assert queued.wait(30)
        try:
            delete_set(ArtifactSet.objects.get(pk=world.set.pk))
        except DeleteRefused as exc:
            outcome["refused"] = str(exc)

    in_threads(2, lambda index: prepare() if index == 0 else delete())

    operation = outcome["operation"]
    assert outcome["refused"] == (
        f"artifact set {NAME} is in use: Prepare #{operation.pk} on cluster air is queued and installs from this "
        "set on m1"
    )
    kept = ArtifactSet.objects.get(pk=world.set.pk)
    assert services.verify_stored(kept) == [], "the set's rows and every file are still there"


def test_a_prepare_queued_during_the_deletion_waits_for_it_and_then_refuses(world, monkeypatch):
    locked = threading.Event()

    def pause_while_locked(artifact_set) -> list:
        """Runs inside the deletion's transaction, once its record is appended and the uses read."""
        locked.set()
        _until_another_connection_waits()
        return []

    monkeypatch.setattr(services, "_USE_FINDERS", [find_uses, pause_while_locked])
    outcome: dict = {}

    def delete() -> None:
        outcome["deleted"] = delete_set(ArtifactSet.objects.get(pk=world.set.pk))

    def prepare() -> None:
        assert locked.wait(30)
        # Kubeboard still holds the set when it is asked: queueing waits for the deletion.
        outcome["operation"] = start_prepare(world.cluster, [world.node])

    in_threads(2, lambda index: delete() if index == 0 else prepare())

    assert outcome["deleted"].name == NAME and not (world.store / NAME).exists()
    assert Operation.objects.get(pk=outcome["operation"].pk).status == Operation.Status.QUEUED
    assert _seq("artifacts.deleted") < _seq("operation.queued"), "the Prepare was queued after the deletion"
    # Its first step (facts) looks the set up before anything changes on the machine: refused.
    assert find_set("v1.37.2", "amd64") is None
    facts = knowledge.Facts(
        distribution=knowledge.Distribution("debian", "Debian", knowledge.DEBIAN, (12,)),
        version="12",
        pretty_name="Debian 12",
        architecture="amd64",
        init_system="systemd",
    )
    with pytest.raises(PhaseError, match=r"Kubeboard holds no artifact set for Kubernetes v1\.37\.2 on amd64"):
        _artifact_set(SimpleNamespace(cluster=world.cluster), facts)

"""Grouped sealing of audit records on PostgreSQL: writers outside a transaction stage their
records without the chain's lock, and one lock holder seals every staged record with one
commit. A record is never lost (a writer that dies after staging has its record sealed by the
next append), and the chain stays one gap-free, keyed chain."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import DataError, connection

from audit.chain import seal_staged, verify
from audit.checkpoints import scheduled_checkpoint
from audit.models import AuditEvent, AuditStaged
from audit.services import record
from tests import conftest
from tests.support import processes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("grouped sealing is PostgreSQL's; SQLite's appends are serialised by the database")


def _url() -> str:
    return conftest.test_database_env()["database_url"]


class HeadLock:
    """Another session holding the chain head's row lock, as a writer in the middle of its
    seal (or an append inside a long transaction) does."""

    def __enter__(self) -> HeadLock:
        self.session = psycopg.connect(_url(), autocommit=False)
        self.session.execute("SELECT 1 FROM audit_auditchainhead WHERE id = 1 FOR UPDATE")
        return self

    def release(self) -> None:
        if not self.session.closed:
            self.session.commit()
            self.session.close()

    def __exit__(self, *exc) -> None:
        self.release()


def wait_for_staged(count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while AuditStaged.objects.count() < count:
        assert time.monotonic() < deadline, f"expected {count} staged records, have {AuditStaged.objects.count()}"
        time.sleep(0.05)


def test_writers_waiting_for_the_chain_are_sealed_together_with_one_commit():
    record("test.first")
    writers = 4
    with HeadLock() as lock, ThreadPoolExecutor(writers) as pool:

        def write(index: int) -> AuditEvent:
            try:
                return record("test.grouped", details={"writer": index})
            finally:
                connection.close()

        futures = [pool.submit(write, index) for index in range(writers)]
        wait_for_staged(writers)  # each committed its record while the chain was locked
        assert AuditEvent.objects.filter(action="test.grouped").count() == 0
        lock.release()
        returned = [future.result(timeout=60) for future in futures]

    stored = {event.pk: event for event in AuditEvent.objects.filter(action="test.grouped")}
    assert sorted(event.seq for event in stored.values()) == [2, 3, 4, 5]
    for event in returned:  # each writer got its own record back, sealed, once its call returned
        assert (event.seq, event.prev_hash, event.hash) == (
            stored[event.pk].seq,
            stored[event.pk].prev_hash,
            stored[event.pk].hash,
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT xmin::text) FROM audit_auditevent WHERE action = 'test.grouped'")
        assert cursor.fetchone()[0] == 1, "the four records were sealed by one transaction (one WAL flush)"
    assert not AuditStaged.objects.exists()
    assert verify().intact


DIES_AFTER_STAGING = """
import django, os
django.setup()
from audit.services import record
record("test.orphan", details={"pid": os.getpid()})
"""


def _start_writer_that_gets_stuck_sealing() -> subprocess.Popen:
    env = processes.kubeboard_env(**conftest.test_database_env())
    return subprocess.Popen([sys.executable, "-c", DIES_AFTER_STAGING], env=env, cwd=processes.ROOT)


@pytest.mark.parametrize("sealed_by", ["the next append", "seal_staged", "the scheduled checkpoint"])
def test_a_record_whose_writer_died_before_sealing_it_is_sealed_later(sealed_by):
    record("test.first")
    with HeadLock():
        writer = _start_writer_that_gets_stuck_sealing()
        try:
            wait_for_staged(1)
        finally:
            writer.kill()  # dies after its record was committed, before it was sealed
            writer.wait(timeout=30)
    assert AuditEvent.objects.count() == 1 and AuditStaged.objects.count() == 1

    if sealed_by == "the next append":
        record("test.next")
        assert list(AuditEvent.objects.order_by("seq").values_list("seq", "action")) == [
            (1, "test.first"),
            (2, "test.orphan"),
            (3, "test.next"),
        ]
    elif sealed_by == "seal_staged":
        assert seal_staged() == 1
        assert list(AuditEvent.objects.order_by("seq").values_list("seq", "action")) == [
            (1, "test.first"),
            (2, "test.orphan"),
        ]
    else:
        assert scheduled_checkpoint() == 2, "the checkpoint covers the record sealed before it"
        assert list(AuditEvent.objects.order_by("seq").values_list("seq", "action")) == [
            (1, "test.first"),
            (2, "test.orphan"),
            (3, "audit.checkpoint_created"),
        ]
    assert AuditEvent.objects.get(action="test.orphan").details == {"pid": writer.pid}
    assert not AuditStaged.objects.exists()
    assert verify().intact


def test_a_record_the_chain_would_refuse_is_refused_when_staged_and_holds_up_no_one():
    record("test.before")
    # The staged row has the record's columns: the database refuses it there, so it never
    # reaches the group, where it would fail the seal of every record staged with it.
    with pytest.raises(DataError, match="too long"):
        record("test.overlong", correlation_id="c" * 65)
    assert not AuditStaged.objects.exists()
    barrier = threading.Barrier(3)

    def write(index: int) -> None:
        try:
            barrier.wait()
            record("test.after", details={"writer": index})
        finally:
            connection.close()

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(write, range(3)))
    assert AuditEvent.objects.count() == 4
    assert verify().intact


def _stage_as_a_database_writer(sql: str, params: list | None = None) -> None:
    """Write the staging table the way someone with the database but without the audit key can."""
    with psycopg.connect(_url(), autocommit=True) as session:
        session.execute(sql, params or [])


def test_a_row_a_database_writer_stages_is_never_sealed(caplog):
    record("test.first")
    columns = [f.column for f in AuditStaged._meta.concrete_fields if f.name not in ("id", "details", "changes")]
    values = {c: "" for c in columns} | {"created": "2026-12-06T10:00:00+00:00", "action": "cluster.deleted"}
    values |= {"actor_name": "mallory", "outcome": "success", "actor_id": None, "cluster_id": None, "team_id": None}
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    _stage_as_a_database_writer(
        f"INSERT INTO audit_auditstaged (id, details, changes, {names}) "
        f"VALUES (nextval(pg_get_serial_sequence('audit_auditevent', 'id')), '{{}}', '{{}}', {marks})",
        list(values.values()),
    )
    with caplog.at_level("ERROR", logger="audit.chain"):
        record("test.next")
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == ["test.first", "test.next"]
    assert not AuditEvent.objects.filter(actor_name="mallory").exists()
    assert not AuditStaged.objects.exists()
    assert "its MAC does not verify" in caplog.text
    assert verify().intact


def test_a_staged_row_copied_back_after_its_seal_is_not_sealed_twice(caplog):
    record("test.first")
    with HeadLock():
        writer = _start_writer_that_gets_stuck_sealing()
        try:
            wait_for_staged(1)
            _stage_as_a_database_writer("CREATE TABLE stolen_staged AS SELECT * FROM audit_auditstaged")
        finally:
            writer.kill()
            writer.wait(timeout=30)
    try:
        assert seal_staged() == 1
        _stage_as_a_database_writer("INSERT INTO audit_auditstaged SELECT * FROM stolen_staged")
        with caplog.at_level("ERROR", logger="audit.chain"):
            record("test.next")
    finally:
        _stage_as_a_database_writer("DROP TABLE IF EXISTS stolen_staged")
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)) == [
        "test.first",
        "test.orphan",
        "test.next",
    ]
    assert "its id is already a record" in caplog.text
    assert not AuditStaged.objects.exists()
    assert verify().intact

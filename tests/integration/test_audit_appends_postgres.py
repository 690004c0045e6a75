"""Appends outside a transaction on PostgreSQL (tasks, commands): the record commits without
waiting for the WAL flush while it holds the chain head's lock, and ``record`` returns only
after a synchronous commit flushed the WAL past it. Any number of writers still form one
gap-free keyed chain, and a record the database refuses holds up no one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import DataError, connection

from audit.chain import verify
from audit.models import AuditEvent
from audit.services import record

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's append path; SQLite's appends are serialised by the database")


def test_concurrent_writers_form_one_gap_free_chain_and_each_gets_its_own_record_back():
    record("test.first")
    writers, each = 4, 25
    barrier = threading.Barrier(writers)

    def write(index: int) -> list[AuditEvent]:
        try:
            barrier.wait()
            return [record("test.concurrent", details={"writer": index, "n": n}) for n in range(each)]
        finally:
            connection.close()

    with ThreadPoolExecutor(writers) as pool:
        returned = [event for events in pool.map(write, range(writers)) for event in events]

    stored = {event.pk: event for event in AuditEvent.objects.filter(action="test.concurrent")}
    assert sorted(event.seq for event in stored.values()) == list(range(2, 2 + writers * each))
    for event in returned:
        assert (event.seq, event.prev_hash, event.hash) == (
            stored[event.pk].seq,
            stored[event.pk].prev_hash,
            stored[event.pk].hash,
        )
    assert verify().intact


def test_an_append_returns_only_once_the_wal_holding_its_record_is_flushed():
    # The record's own commit does not wait for the flush (so the head's lock is not held
    # through it); the call must still not return before the record is on disk. Nothing else
    # writes WAL here, so "flushed up to the insert position" covers the record's commit. When
    # the flush ended at a page's end, the insert position is already past the next page's
    # header (24 bytes; 40 at a segment's start): that is flushed up to it.
    for n in range(30):
        record("test.durable", details={"n": n})
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn()), "
                "pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0') % 8192, "
                "pg_current_wal_flush_lsn(), pg_current_wal_insert_lsn()"
            )
            behind, in_page, flush_lsn, insert_lsn = cursor.fetchone()
        flushed = behind <= 0 or (behind == in_page and in_page <= 40)
        assert flushed, f"append {n} returned with the WAL flushed only to {flush_lsn}, written to {insert_lsn}"


def test_a_record_the_database_refuses_releases_the_chain_for_the_next_writers():
    record("test.before")
    with pytest.raises(DataError, match="too long"):
        record("test.overlong", correlation_id="c" * 65)
    barrier = threading.Barrier(3)

    def write(index: int) -> None:
        try:
            barrier.wait()
            record("test.after", details={"writer": index})
        finally:
            connection.close()

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(write, range(3)))
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4]
    assert verify().intact

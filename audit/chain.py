"""Appending to the one chain and verifying it.

Appends take the chain head row's lock (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
IMMEDIATE transactions already serialise writers), so any number of web processes and workers
extend one chain: each record gets the next ``seq`` and links to the record before it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection, models, transaction

from audit import keys
from audit.models import (
    GENESIS,
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    canonical_json,
    event_content,
    legacy_hash,
)

logger = logging.getLogger(__name__)


def _locked_head() -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        AuditChainHead.objects.get_or_create(pk=1)
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    # A head rewound or deleted behind the records (a database writer cut records off): go on
    # after the last record there is instead of failing on a taken seq; verify reports the break.
    head.count = max(head.count, AuditEvent.objects.aggregate(last=models.Max("seq"))["last"] or 0)
    return head


def _seal(event: AuditEvent, seq: int, prev: str, ring: keys.KeyRing) -> None:
    event.seq = seq
    event.prev_hash = prev
    event.key_id = ring.signing_id
    event.hash = ring.mac(ring.signing_id, canonical_json(event_content(event)))


def _advance(count: int, last_hash: str, ring: keys.KeyRing) -> None:
    key_id, mac = ring.sign(AuditChainHead.mac_input(count, last_hash))
    AuditChainHead.objects.filter(pk=1).update(count=count, last_hash=last_hash, key_id=key_id, mac=mac)


def append(event: AuditEvent) -> AuditEvent:
    """Seal ``event`` as the newest record and insert it (inside the caller's transaction).

    Outside a transaction (autocommit) the record is in the chain, durable, when this returns."""
    ring = keys.keyring()
    if connection.vendor == "postgresql":
        _append_postgres(event, ring, own_transaction=connection.get_autocommit())
        return event
    with transaction.atomic():
        head = _locked_head()
        _seal(event, head.count + 1, head.last_hash or GENESIS, ring)
        event.save()
        _advance(event.seq, event.hash, ring)
    return event


# GREATEST: a head rewound or deleted behind the records (see _locked_head) continues after the
# last record instead of failing on a taken seq (one index lookup).
LOCK_HEAD = (
    "UPDATE audit_auditchainhead SET count = GREATEST(count, (SELECT COALESCE(MAX(seq), 0) FROM audit_auditevent)) + 1 "
    "WHERE id = 1 RETURNING count, last_hash"
)


# An append in its own transaction commits without waiting for the WAL flush, so the head's
# lock is released at once instead of after the flush (every writer would wait for every flush
# in turn). The record is visible then but not yet durable: ``append`` returns only after
# DURABLE. A crash in between loses it and every record after it (the WAL is one sequence, and
# later records' writers have not returned either), never a record in the middle.
BEGIN_APPEND = "BEGIN; SET LOCAL synchronous_commit TO off"

# After the head's lock is gone, wait until the record is on disk: a transactional WAL message
# gets a transaction id, so its commit (synchronous) flushes the WAL up to and past the record's
# commit. Concurrent writers' flushes are shared by PostgreSQL's group commit, outside the lock.
DURABLE = "SELECT pg_logical_emit_message(true, 'kubeboard.audit', '')"


def _lock_head(cursor, own_transaction: bool) -> tuple[int, str] | None:
    """Lock and read the head in one round trip (its lock serialises every writer)."""
    if not own_transaction:
        cursor.execute(LOCK_HEAD)
        return cursor.fetchone()
    cursor.execute(f"{BEGIN_APPEND}; {LOCK_HEAD}")
    for _ in range(BEGIN_APPEND.count(";") + 1):
        cursor.nextset()  # past BEGIN's and SET's results
    row = cursor.fetchone()
    if row is None:
        cursor.execute("ROLLBACK")
    return row


# The columns sealing fills in: the chain position and the MAC.
SEALED = ("seq", "prev_hash", "hash", "key_id")


@functools.cache
def _insert_and_advance() -> tuple[list[models.Field], list[tuple[int, str]], str]:
    """The record's columns, where the sealed ones are among them, and the one statement that
    inserts it and moves the head (built once)."""
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    sealed = [(index, field.attname) for index, field in enumerate(fields) if field.attname in SEALED]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    sql = (
        f"WITH inserted AS (INSERT INTO audit_auditevent ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id) "
        "UPDATE audit_auditchainhead SET last_hash = %s, key_id = %s, mac = %s WHERE id = 1 "
        "RETURNING (SELECT id FROM inserted)"
    )
    return fields, sealed, sql


def _append_postgres(event: AuditEvent, ring: keys.KeyRing, *, own_transaction: bool) -> None:
    """Two statements while the head row is locked, as short as it can be held: the lock and
    read, then the insert with the head's update (and, in its own transaction, the COMMIT).
    Every value but the chain position is ready before the lock is taken."""
    fields, sealed, sql = _insert_and_advance()
    values = [
        None if field.attname in SEALED else field.get_db_prep_save(getattr(event, field.attname), connection)
        for field in fields
    ]
    with connection.cursor() as cursor:
        try:
            row = _lock_head(cursor, own_transaction)
            if row is None:
                AuditChainHead.objects.get_or_create(pk=1)
                row = _lock_head(cursor, own_transaction)
            _seal(event, row[0], row[1] or GENESIS, ring)
            for index, attname in sealed:
                values[index] = getattr(event, attname)
            key_id, mac = ring.sign(AuditChainHead.mac_input(event.seq, event.hash))
            cursor.execute(
                sql + (f"; COMMIT; {DURABLE}" if own_transaction else ""), [*values, event.hash, key_id, mac]
            )
            event.pk = cursor.fetchone()[0]
        except BaseException:
            if own_transaction and connection.connection is not None:
                _rollback_quietly(cursor)
            raise
    event._state.adding = False
    event._state.db = connection.alias


def _rollback_quietly(cursor) -> None:
    # The error that brought us here is the one to report; a broken connection cannot roll back.
    try:
        cursor.execute("ROLLBACK")
    except Exception:
        pass


def append_many(events: Iterable[AuditEvent], *, batch_size: int = 5000) -> int:
    """Bulk load that still forms one valid chain (benchmarks, imports): one lock, batched inserts."""
    ring = keys.keyring()
    written = 0
    with transaction.atomic():
        head = _locked_head()
        seq, prev = head.count, head.last_hash or GENESIS
        pending: list[AuditEvent] = []
        for event in events:
            seq += 1
            _seal(event, seq, prev, ring)
            prev = event.hash
            pending.append(event)
            if len(pending) >= batch_size:
                models.QuerySet.bulk_create(AuditEvent.objects.all(), pending)
                written += len(pending)
                pending = []
        if pending:
            models.QuerySet.bulk_create(AuditEvent.objects.all(), pending)
            written += len(pending)
        if written:
            _advance(seq, prev, ring)
    return written


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    event_id: int  # 0 = not one record (the head, a checkpoint)
    reason: str
    seq: int | None = None


@dataclass
class Report:
    count: int = 0
    keyed: int = 0
    legacy: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint_checked: bool = False
    last_seq: int = 0  # the newest record walked
    external: str = ""  # the external checkpoint the chain was checked against ("" = none)
    external_seq: int | None = None

    @property
    def intact(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> ChainBreak | None:
        return min(self.breaks, key=lambda b: (b.seq is None, b.seq or 0)) if self.breaks else None


UPGRADE_ACTION = "audit.chain_upgraded"


def _seals_legacy(event: AuditEvent, legacy_count: int, legacy_head: str) -> bool:
    """Whether ``event`` is the keyed record the upgrade appended after exactly these unkeyed
    records (its MAC covers their number and their head, so no database writer can make one)."""
    details = event.details if isinstance(event.details, dict) else {}
    return (
        event.action == UPGRADE_ACTION
        and event.source == "migration"
        and details.get("legacy_records") == legacy_count
        and details.get("legacy_head") == legacy_head
        and event.prev_hash == legacy_head
    )


def verify(
    checkpoint: dict | None = None, *, events: Iterable[AuditEvent] | None = None, external: bool = True
) -> Report:
    """Walk the chain in ``seq`` order and report every record that does not hold.

    Checked against: every record's keyed MAC and link; unkeyed records only as the prefix the
    upgrade sealed with a keyed ``audit.chain_upgraded`` record (no downgrade); the head's MAC;
    the stored checkpoints; the newest checkpoint in the checkpoint directory outside the
    database (``external``, on by default); and ``checkpoint``, an exported one
    (``audit.checkpoints.load``). A checkpoint counts only if signed by this installation's
    key; the record at its ``seq`` must carry its head, and a chain shorter than it means the
    newest records were removed.
    """
    from audit.checkpoints import newest_external, signature_problem

    ring = keys.keyring()
    report = Report()
    targets: dict[int, list[tuple[str, str]]] = {}  # seq -> [(expected head, which checkpoint)]

    def expect(data: dict, which: str) -> None:
        problem = signature_problem(data)
        if problem:
            report.breaks.append(ChainBreak(0, f"{which} at record {data.get('seq')} is refused: {problem}"))
        else:
            targets.setdefault(data["seq"], []).append((data["head"], which))

    for cp in AuditCheckpoint.objects.all():
        expect(cp.as_export(), f"stored checkpoint #{cp.pk}")
    if checkpoint is not None:
        report.checkpoint_checked = True
        expect(checkpoint, "the exported checkpoint")
    if external:
        outside = newest_external()
        report.notes.extend(outside.notes)
        report.breaks.extend(ChainBreak(0, problem) for problem in outside.problems)
        if outside.newest is not None:
            report.external, report.external_seq = outside.describe(), outside.newest["seq"]
            expect(outside.newest, f"the {outside.describe()}")

    if events is None:
        events = AuditEvent.objects.order_by("seq").iterator(chunk_size=5000)
    previous, expected_seq, seen_keyed, last_seq = GENESIS, 1, False, 0
    first_legacy: AuditEvent | None = None
    for event in events:
        report.count += 1
        last_seq = event.seq

        def broken(reason: str, event=event) -> None:
            report.breaks.append(ChainBreak(event.id, reason, event.seq))

        if event.seq != expected_seq:
            broken(f"expected record number {expected_seq} here, found {event.seq} (records were removed or inserted)")
        if event.prev_hash != previous:
            broken(
                "its link to the previous record does not match (a record before it was removed, replaced or reordered)"
            )
        if event.key_id:
            if first_legacy is not None and not seen_keyed and not _seals_legacy(event, report.legacy, previous):
                broken(f"the unkeyed records before it are not sealed by the upgrade's keyed {UPGRADE_ACTION} record")
            seen_keyed = True
            report.keyed += 1
            if event.key_id not in ring.secrets:
                broken(f"signed with key id {event.key_id!r}, which is not configured (KUBEBOARD_AUDIT_KEYS)")
            elif not ring.verifies(event.key_id, canonical_json(event_content(event)), event.hash):
                broken("its content does not match its keyed hash (the record was edited)")
        else:
            report.legacy += 1
            first_legacy = first_legacy or event
            if seen_keyed:
                broken(
                    "an unkeyed record after keyed ones (records without a key are only valid from before the upgrade)"
                )
            elif legacy_hash(event) != event.hash:
                broken("its content does not match its hash (the record was edited)")
        for head, which in targets.pop(event.seq, []):
            if event.hash != head:
                broken(f"it differs from {which}, which signed this position with another record")
        previous = event.hash
        expected_seq = event.seq + 1
    report.last_seq = last_seq

    if first_legacy is not None and not seen_keyed:
        # An installation with audit keys accepts unkeyed records only as the prefix the upgrade
        # sealed; a chain of nothing but unkeyed records is a database writer's downgrade.
        report.breaks.append(
            ChainBreak(
                first_legacy.id,
                f"{report.legacy} unkeyed record(s) with no keyed {UPGRADE_ACTION} record sealing them: "
                "records were rewritten without the audit key",
                first_legacy.seq,
            )
        )
    for seq, expected in sorted(targets.items()):
        for _head, which in expected:
            report.breaks.append(
                ChainBreak(
                    0,
                    f"{which} covers {seq} records but the chain ends at {last_seq}: the newest records were removed",
                )
            )
    _check_head(report, ring, last_seq, previous)
    return report


def _check_head(report: Report, ring: keys.KeyRing, last_seq: int, last_hash: str) -> None:
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or not (head.count or head.last_hash):
        if last_seq:
            report.breaks.append(
                ChainBreak(0, f"the chain head is missing or empty although {last_seq} record(s) exist")
            )
        return
    if head.count != last_seq or (head.last_hash or GENESIS) != last_hash:
        report.breaks.append(
            ChainBreak(
                0,
                f"the chain head says {head.count} records ending in {head.last_hash[:12]}…, "
                f"the table ends at record {last_seq}: records were removed or the head was replaced",
            )
        )
    if not head.key_id:
        report.breaks.append(ChainBreak(0, "the chain head carries no MAC (the head row was rewritten)"))
    elif not ring.verifies(head.key_id, AuditChainHead.mac_input(head.count, head.last_hash), head.mac):
        report.breaks.append(ChainBreak(0, "the chain head's MAC is not valid (the head row was rewritten)"))


def seal_legacy_chain(event_model, head_model) -> bool:
    """Upgrade: number the records written before keyed records, and append one keyed record
    whose MAC covers their head, so rewriting any of them is detected from now on.

    Works with the real models and with a migration's historical ones. Returns True if it sealed.
    """
    from django.utils import timezone

    ring = keys.keyring()
    legacy = list(event_model.objects.filter(seq__isnull=True).order_by("id").values_list("id", flat=True))
    for number, pk in enumerate(legacy, start=1):
        event_model.objects.filter(pk=pk).update(seq=number)
    head, _ = head_model.objects.get_or_create(pk=1)
    if not legacy:
        return False
    last = event_model.objects.order_by("-seq").first()
    marker = event_model(
        created=timezone.now(),
        actor_name="system",
        action="audit.chain_upgraded",
        outcome="success",
        details={"legacy_records": len(legacy), "legacy_head": last.hash, "note": "earlier records carry SHA-256 only"},
        changes={},
        source="migration",
    )
    _seal(marker, len(legacy) + 1, last.hash, ring)
    models.QuerySet.bulk_create(event_model._base_manager.all(), [marker])
    key_id, mac = ring.sign(AuditChainHead.mac_input(marker.seq, marker.hash))
    head_model.objects.filter(pk=1).update(count=marker.seq, last_hash=marker.hash, key_id=key_id, mac=mac)
    return True

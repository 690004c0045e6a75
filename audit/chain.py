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

    On PostgreSQL outside a transaction (autocommit) the record is staged and sealed in a group
    (``_stage_and_seal``): it is in the chain, durable, when this returns."""
    ring = keys.keyring()
    if connection.vendor == "postgresql":
        if connection.get_autocommit():
            _stage_and_seal(event, ring)
        else:
            _append_postgres(event, ring, own_transaction=False)
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


def _lock_head(cursor, own_transaction: bool) -> tuple[int, str] | None:
    """Lock and read the head in one round trip (its lock serialises every writer)."""
    if not own_transaction:
        cursor.execute(LOCK_HEAD)
        return cursor.fetchone()
    cursor.execute(f"BEGIN; {LOCK_HEAD}")
    cursor.nextset()  # past BEGIN's result
    row = cursor.fetchone()
    if row is None:
        cursor.execute("ROLLBACK")
    return row


@functools.cache
def _insert_and_advance() -> tuple[list[models.Field], str]:
    """The record's columns and the one statement that inserts it and moves the head (built once)."""
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    sql = (
        f"WITH inserted AS (INSERT INTO audit_auditevent ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id) "
        "UPDATE audit_auditchainhead SET last_hash = %s, key_id = %s, mac = %s WHERE id = 1 "
        "RETURNING (SELECT id FROM inserted)"
    )
    return fields, sql


def _append_postgres(event: AuditEvent, ring: keys.KeyRing, *, own_transaction: bool) -> None:
    """Two statements while the head row is locked, as short as it can be held: the lock and
    read, then the insert with the head's update (and, in its own transaction, the COMMIT)."""
    with connection.cursor() as cursor:
        try:
            row = _lock_head(cursor, own_transaction)
            if row is None:
                AuditChainHead.objects.get_or_create(pk=1)
                row = _lock_head(cursor, own_transaction)
            _seal(event, row[0], row[1] or GENESIS, ring)
            key_id, mac = ring.sign(AuditChainHead.mac_input(event.seq, event.hash))
            fields, sql = _insert_and_advance()
            values = [field.get_db_prep_save(getattr(event, field.attname), connection) for field in fields]
            cursor.execute(sql + ("; COMMIT" if own_transaction else ""), [*values, event.hash, key_id, mac])
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


# --- grouped sealing: PostgreSQL appends outside a transaction ----------------------------
#
# With fsync on, a commit waits for its WAL flush; an append that commits while holding the
# head lock makes every other writer wait for that flush too (one flush per record, in turn).
# Instead a writer commits its record to ``audit_auditstaged`` without any lock (concurrent
# commits share flushes), then takes the head lock and moves every staged record into the
# chain, in staging order, with one commit: one flush seals the whole group. A writer whose
# record another writer sealed meanwhile finds it in the chain and returns. A record staged by
# a process that died before sealing it is sealed by the next append or by ``seal_staged``.

SEAL_BATCH = 500


@functools.cache
def _staging_sql() -> tuple[list[models.Field], list[models.Field], str, str]:
    """The staged columns, the record's columns, the staging insert and the group's take (built once)."""
    from audit.models import AuditStaged

    staged = [
        field
        for field in AuditStaged._meta.concrete_fields
        if not field.primary_key and field.name not in ("stage_key_id", "stage_mac")
    ]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in staged)
    # The staged row's id comes from the records' own sequence: it is the record's id for good,
    # and the writer's MAC covers it (a row copied back in after its seal has an id taken).
    # Its commit does not wait for a WAL flush: the group's sealing commit (synchronous) flushes
    # the WAL up to and past it, and ``append`` returns only once that commit is visible, which
    # PostgreSQL makes a synchronous commit only after its flush. So one flush per group.
    stage = (
        "BEGIN; SET LOCAL synchronous_commit TO off; "
        f"INSERT INTO audit_auditstaged (id, {columns}, stage_key_id, stage_mac) VALUES "
        f"({', '.join(['%s'] * (len(staged) + 3))}) RETURNING id; COMMIT"
    )
    take = (
        "BEGIN; SELECT GREATEST(count, (SELECT COALESCE(MAX(seq), 0) FROM audit_auditevent)), last_hash "
        "FROM audit_auditchainhead WHERE id = 1 FOR UPDATE; "
        "DELETE FROM audit_auditstaged WHERE id IN "
        f"(SELECT id FROM audit_auditstaged ORDER BY id LIMIT {SEAL_BATCH}) RETURNING id, {columns}, "
        "stage_key_id, stage_mac, EXISTS (SELECT 1 FROM audit_auditevent e WHERE e.id = audit_auditstaged.id); "
        "SELECT seq, prev_hash, hash, key_id FROM audit_auditevent WHERE id = %s"
    )
    return staged, list(AuditEvent._meta.concrete_fields), stage, take


def staged_message(record_id: int, event: AuditEvent) -> bytes:
    """What a staged row's MAC covers: its id and the record's content, without the chain
    position sealing gives it."""
    content = event_content(event)
    for sealed in ("seq", "prev", "key_id"):
        content.pop(sealed)
    return canonical_json({"staged": record_id, **content})


def _stage_and_seal(event: AuditEvent, ring: keys.KeyRing) -> None:
    staged = _staging_sql()[0]
    values = [field.get_db_prep_save(getattr(event, field.attname), connection) for field in staged]
    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('audit_auditevent', 'id'))")
            record_id = cursor.fetchone()[0]
            stage_key_id, stage_mac = ring.sign(staged_message(record_id, event))
        except BaseException:
            if connection.connection is not None:
                _rollback_quietly(cursor)
            raise
        event.pk = record_id
        # The staging and the first try to seal go in one round trip.
        placed, more = _seal_group(cursor, ring, record_id, stage=[record_id, *values, stage_key_id, stage_mac])
        while placed is None:
            if not more:
                raise RuntimeError(f"audit record {record_id} was staged but is neither staged nor in the chain now")
            placed, more = _seal_group(cursor, ring, record_id)
    event.seq, event.prev_hash, event.hash, event.key_id = placed
    event._state.adding = False
    event._state.db = connection.alias


def _seal_group(
    cursor, ring: keys.KeyRing, mine: int, *, stage: list | None = None
) -> tuple[tuple[int, str, str, str] | None, bool]:
    """Under the head lock, seal up to SEAL_BATCH staged records in one commit. Returns where
    record ``mine`` is in the chain (seq, prev_hash, hash, key_id; None if not there), and
    whether records may still be staged (a full batch, or the head row had to be made).
    ``stage``: the staging statement's parameters, to stage ``mine`` first in the same round trip."""
    staged, fields, stage_sql, take = _staging_sql()
    try:
        if stage is None:
            cursor.execute(take, [mine])
        else:
            cursor.execute(f"{stage_sql}; {take}", [*stage, mine])
            for _ in range(4):  # past the staging's BEGIN, SET, INSERT and COMMIT
                cursor.nextset()
        cursor.nextset()  # past BEGIN
        head = cursor.fetchone()
        cursor.nextset()
        rows = sorted(cursor.fetchall())  # staging order
        cursor.nextset()
        already = cursor.fetchone()
        if head is None:  # a fresh database has no head row yet
            cursor.execute("ROLLBACK")
            AuditChainHead.objects.get_or_create(pk=1)
            return None, True
        if not rows:
            cursor.execute("COMMIT")
            return already, False
        seq, prev = head[0], head[1] or GENESIS
        params: list = []
        placed = already
        sealing = 0
        for row in rows:
            event = AuditEvent(id=row[0])
            content, (stage_key_id, stage_mac, taken) = row[1:-3], row[-3:]
            for field, value in zip(staged, content, strict=True):
                converter = getattr(field, "from_db_value", None)
                setattr(event, field.attname, converter(value, None, connection) if converter else value)
            if taken or not ring.verifies(stage_key_id, staged_message(event.id, event), stage_mac):
                # Not staged by a holder of the audit key (or copied back in after its seal):
                # a database writer's row. Dropped, never sealed; said loudly.
                logger.error(
                    "audit: dropped staged row %s (%s): %s",
                    event.id,
                    event.action[:64],
                    "its id is already a record" if taken else "its MAC does not verify (not written by Kubeboard)",
                )
                continue
            sealing += 1
            seq += 1
            _seal(event, seq, prev, ring)
            prev = event.hash
            params += [field.get_db_prep_save(getattr(event, field.attname), connection) for field in fields]
            if event.id == mine:
                placed = (event.seq, event.prev_hash, event.hash, event.key_id)
        if not sealing:
            cursor.execute("COMMIT")  # the dropped rows go; nothing to seal
            return placed, len(rows) == SEAL_BATCH
        key_id, mac = ring.sign(AuditChainHead.mac_input(seq, prev))
        columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
        row_marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
        cursor.execute(
            f"INSERT INTO audit_auditevent ({columns}) VALUES {', '.join([row_marks] * sealing)}; "
            "UPDATE audit_auditchainhead SET count = %s, last_hash = %s, key_id = %s, mac = %s WHERE id = 1; COMMIT",
            [*params, seq, prev, key_id, mac],
        )
    except BaseException:
        if connection.connection is not None:
            _rollback_quietly(cursor)
        raise
    return placed, len(rows) == SEAL_BATCH


def seal_staged() -> int:
    """Seal records a process staged but did not live to seal (PostgreSQL; elsewhere nothing is
    ever staged). Outside a transaction only. Returns how many remained staged before."""
    if connection.vendor != "postgresql" or not connection.get_autocommit():
        return 0
    from audit.models import AuditStaged

    waiting = AuditStaged.objects.count()
    if waiting:
        ring = keys.keyring()
        with connection.cursor() as cursor:
            while _seal_group(cursor, ring, 0)[1]:
                pass
    return waiting


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

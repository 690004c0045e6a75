"""Attacks on the audit trail by someone with full write access to the database (triggers
dropped) but without the HMAC key and the checkpoint key: each one is detected by
``verify_audit`` with no argument, through the keyed records, the head's MAC and the
newest checkpoint in the checkpoint directory outside the database.

Transactional tests: the checkpoint of each record is written after its commit, as in production.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import keys
from audit.chain import verify
from audit.checkpoints import _message, create_checkpoint, newest_external
from audit.models import GENESIS, AuditChainHead, AuditCheckpoint, AuditEvent, canonical_json, event_content
from audit.services import record
from audit.triggers import remove_sql

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def mallory() -> keys.KeyRing:
    """A key of the attacker's own under the installation's key id: they do not have its secret."""
    return keys.parse_keys(f"{keys.keyring().signing_id}:" + "mallory-owns-this-key-" * 2)


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def drop_triggers() -> None:
    """The database owner may: afterwards every row is theirs to change."""
    for statement in remove_sql(connection.vendor):
        sql(statement)


def put(event: AuditEvent) -> None:
    sql(
        "UPDATE audit_auditevent SET seq = %s, actor_name = %s, details = %s, key_id = %s, prev_hash = %s, hash = %s "
        "WHERE id = %s",
        [event.seq, event.actor_name, json.dumps(event.details), event.key_id, event.prev_hash, event.hash, event.id],
    )


def reseal(ring: keys.KeyRing | None = None) -> None:
    """Recompute every link and MAC (with a key that is not the installation's) and the head."""
    ring = ring or mallory()
    previous = GENESIS
    for event in AuditEvent.objects.order_by("seq"):
        event.prev_hash = previous
        event.hash = ring.mac(event.key_id, canonical_json(event_content(event)))
        put(event)
        previous = event.hash
    set_head(AuditEvent.objects.count(), previous, ring)


def set_head(count: int, last_hash: str, ring: keys.KeyRing | None | str = "mallory") -> None:
    ring = mallory() if ring == "mallory" else ring
    key_id, mac = ring.sign(AuditChainHead.mac_input(count, last_hash)) if ring else ("", "")
    sql(
        "UPDATE audit_auditchainhead SET count = %s, last_hash = %s, key_id = %s, mac = %s WHERE id = 1",
        [count, last_hash, key_id, mac],
    )


def the_trail(n: int = 5) -> list[AuditEvent]:
    """The issue's starting point: records and a checkpoint (whose own record follows it)."""
    events = [record(f"test.{i}", details={"n": i}) for i in range(n)]
    create_checkpoint()
    events.append(record("audit.checkpoint_created", details={"seq": n}))
    return events


def detected(match: str = "NOT intact") -> str:
    """verify_audit, as an operator runs it (no argument): exits non-zero; returns its report."""
    with open("/dev/null", "w") as out, pytest.raises(CommandError, match=match):
        call_command("verify_audit", stdout=out, stderr=out)
    report = verify()
    assert not report.intact
    return " | ".join(b.reason for b in report.breaks)


def head_row() -> tuple:
    return tuple(AuditChainHead.objects.values_list("count", "last_hash", "key_id", "mac").get(pk=1))


def test_the_trail_is_intact_and_every_committed_record_is_already_outside_the_database():
    for n in range(1, 6):
        event = record("test.window", details={"n": n})
        # The truncation window: the newest external checkpoint is the record just committed.
        assert newest_external().newest["seq"] == event.seq
    report = verify()
    assert report.intact, report.breaks
    assert report.external_seq == 5 and "external checkpoint at record 5" in report.external
    out = open("/dev/null", "w")
    call_command("verify_audit", stdout=out)


def test_the_issue_downgrade_to_unkeyed_records_is_detected():
    the_trail()
    drop_triggers()
    sql("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = 3")
    previous = GENESIS
    for event in AuditEvent.objects.order_by("seq"):
        event.key_id, event.prev_hash = "", previous
        event.hash = event.legacy_hash()
        put(event)
        previous = event.hash
    sql("DELETE FROM audit_auditcheckpoint")
    set_head(AuditEvent.objects.count(), previous, ring=None)

    reasons = detected(match="first: record #1")
    assert "unkeyed" in reasons
    # Even with the checkpoint directory gone too, the unsealed unkeyed prefix is refused.
    inside = verify(external=False)
    assert inside.first_break.seq == 1 and "no keyed audit.chain_upgraded record" in inside.first_break.reason


def test_editing_a_record_is_detected():
    events = the_trail()
    drop_triggers()
    event = AuditEvent.objects.get(pk=events[2].pk)
    event.actor_name = "mallory"
    put(event)
    detected(match=f"first: record #{events[2].seq}")


def test_editing_a_record_and_resealing_with_another_key_is_detected():
    events = the_trail()
    drop_triggers()
    sql("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE id = %s", [events[1].pk])
    reseal()
    assert "does not match its keyed hash" in detected(match="first: record #1")


def test_inserting_a_record_is_detected():
    events = the_trail()
    drop_triggers()
    # Make room after record 2 and put a record of the attacker's there, with its MAC.
    for event in AuditEvent.objects.filter(seq__gt=2).order_by("-seq"):
        sql("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [event.seq + 1, event.id])
    forged = AuditEvent(**{f.attname: getattr(events[1], f.attname) for f in AuditEvent._meta.concrete_fields})
    forged.pk, forged.seq, forged.action, forged.prev_hash = None, 3, "cluster.deleted", events[1].hash
    forged.hash = mallory().mac(forged.key_id, canonical_json(event_content(forged)))
    with connection.cursor() as cursor:
        fields = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
        cursor.execute(
            f"INSERT INTO audit_auditevent ({', '.join(f.column for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})",
            [f.get_db_prep_save(getattr(forged, f.attname), connection) for f in fields],
        )
    reseal()
    detected(match="first: record #1")  # every MAC the attacker made is refused
    assert "cluster.deleted" in AuditEvent.objects.get(seq=3).action


def test_deleting_a_record_is_detected():
    events = the_trail()
    drop_triggers()
    sql("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    assert "expected record number 3" in detected(match="first: record #4")


def test_reordering_records_is_detected():
    events = the_trail()
    drop_triggers()
    second, third = events[1].seq, events[2].seq
    sql("UPDATE audit_auditevent SET seq = -1 WHERE id = %s", [events[1].pk])
    sql("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [second, events[2].pk])
    sql("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [third, events[1].pk])
    detected(match=f"first: record #{second}")


@pytest.mark.parametrize("head", ["rewound", "deleted", "emptied", "replayed"])
def test_truncating_the_newest_records_is_detected_whatever_the_head_says(head):
    events = the_trail()
    genuine_old_head = head_row()  # a genuine head with a valid MAC, from before the newest records
    events += [record("test.after", details={"n": i}) for i in range(3)]
    drop_triggers()
    sql("DELETE FROM audit_auditevent WHERE seq > %s", [genuine_old_head[0]])
    if head == "rewound":
        set_head(genuine_old_head[0], genuine_old_head[1])
    elif head == "deleted":
        sql("DELETE FROM audit_auditchainhead")
    elif head == "emptied":
        set_head(0, "", ring=None)
    else:
        sql(
            "UPDATE audit_auditchainhead SET count = %s, last_hash = %s, key_id = %s, mac = %s WHERE id = 1",
            list(genuine_old_head),
        )
    reasons = detected()
    assert f"covers {events[-1].seq} records but the chain ends at {genuine_old_head[0]}" in reasons
    if head == "replayed":
        assert verify(external=False).intact, "a replayed genuine head fools everything inside the database"
    # The next append goes on after the last record there is (no "UNIQUE constraint failed"),
    # and the break stays reported.
    after = record("test.after_the_cut")
    assert after.seq == genuine_old_head[0] + 1
    assert not verify().intact


def test_deleting_all_checkpoints_in_the_database_does_not_hide_a_truncation():
    events = the_trail()
    drop_triggers()
    sql("DELETE FROM audit_auditcheckpoint")
    sql("DELETE FROM audit_auditevent WHERE seq = %s", [events[-1].seq])
    set_head(events[-2].seq, events[-2].hash)
    assert AuditCheckpoint.objects.count() == 0
    detected()


@pytest.mark.parametrize("change", ["count", "hash", "mac"])
def test_replacing_the_head_is_detected(change):
    events = the_trail()
    count, last_hash, key_id, mac = head_row()
    if change == "count":
        set_head(count + 1, last_hash)
    elif change == "hash":
        set_head(count, events[0].hash)
    else:
        sql("UPDATE audit_auditchainhead SET mac = %s WHERE id = 1", ["0" * 64])
    assert "head" in detected()


def test_a_checkpoint_re_signed_with_another_key_is_refused(tmp_path):
    events = the_trail()
    drop_triggers()
    # The attacker cuts the newest record and re-signs the stored checkpoint for the shorter
    # chain with a key of their own, putting its public key beside it.
    attacker = Ed25519PrivateKey.generate()
    public = keys.public_key_text(attacker.public_key())
    checkpoint = AuditCheckpoint.objects.get()
    seq, head = events[-3].seq, events[-3].hash
    signature = base64.b64encode(attacker.sign(_message(seq, head, checkpoint.created.isoformat()))).decode()
    sql(
        "UPDATE audit_auditcheckpoint SET seq = %s, head = %s, public_key = %s, signature = %s",
        [seq, head, public, signature],
    )
    reasons = detected()
    assert f"signed by key {keys.fingerprint(public)}, not by this installation's checkpoint key" in reasons
    # The same checkpoint handed in as an exported file is refused too.
    data = AuditCheckpoint.objects.get().as_export()
    (tmp_path / "cp.json").write_text(json.dumps(data))
    with open("/dev/null", "w") as out, pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_audit", "--checkpoint", str(tmp_path / "cp.json"), stdout=out, stderr=out)


def test_a_rewritten_external_checkpoint_line_signed_by_another_key_is_refused(audit_checkpoint_dir):
    the_trail()
    attacker = Ed25519PrivateKey.generate()
    # Claiming more records than there are, to make the trail look cut off.
    data = {"kubeboard_audit_checkpoint": 1, "seq": 99, "head": GENESIS, "created": "2026-01-01T00:00:00+00:00"}
    data["public_key"] = keys.public_key_text(attacker.public_key())
    data["signature"] = base64.b64encode(attacker.sign(_message(99, GENESIS, data["created"]))).decode()
    with open(audit_checkpoint_dir / "checkpoints-2999-01-01.jsonl", "w") as handle:
        handle.write(json.dumps(data) + "\n")
    assert "not by this installation's checkpoint key" in detected()


def test_a_checkpoint_record_carries_the_signed_checkpoint_so_the_siem_stream_witnesses_it():
    from audit.checkpoints import signature_valid
    from audit.export import jsonl_row

    record("test.before")
    with open("/dev/null", "w") as out:
        call_command("audit_checkpoint", stdout=out)
    line = json.loads(jsonl_row(AuditEvent.objects.order_by("-seq").first()))  # what the SIEM receives
    assert line["action"] == "audit.checkpoint_created"
    signed = line["details"]["checkpoint"]
    assert signed["seq"] == 1 and signature_valid(signed)

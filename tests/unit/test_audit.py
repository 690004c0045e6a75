"""The audit trail: keyed chain, append-only everywhere, tamper evidence that survives a
database writer, signed checkpoints, correlation ids and snapshots without secrets."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, DataError, connection, transaction
from django.test import override_settings

from audit import keys
from audit.chain import verify
from audit.checkpoints import create_checkpoint, export, load
from audit.context import audit_context, correlation_id_of
from audit.models import GENESIS, AuditChainHead, AuditCheckpoint, AuditEvent, canonical_json, event_content
from audit.services import AuditSecretError, record, verify_chain
from audit.snapshot import SECRET_SET, snapshot
from audit.triggers import install_sql, installed, remove_sql
from clusters.models import Cluster
from core.encryption import SecretValue
from core.models import AppendOnlyError
from tests.factories import make_cluster

pytestmark = pytest.mark.postgres

QUIET = {"stdout": open("/dev/null", "w"), "stderr": open("/dev/null", "w")}


# --- what an attacker with write access to the database does ------------------------------


def _sql(statements) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def as_database_owner(change) -> None:
    """Drop the triggers (the table owner may), run ``change``, put the triggers back."""
    _sql(remove_sql(connection.vendor))
    try:
        change()
    finally:
        _sql(install_sql(connection.vendor))


def rewrite(event_id: int, details: dict, *, ring: keys.KeyRing | None = None) -> None:
    """Change one record's details and recompute its hash and every later one, and the head.

    Without ``ring`` the attacker has only the database: they recompute with a key of their own.
    With ``ring`` they stole the HMAC key too (only an exported checkpoint catches that)."""
    ring = ring or keys.parse_keys(f"{keys.keyring().signing_id}:" + "attacker-key-" * 4)

    def change() -> None:
        previous = None
        for event in AuditEvent.objects.order_by("seq"):
            if event.id == event_id:
                event.details = details
            if previous is not None and event.id >= event_id:
                event.prev_hash = previous
            if event.id >= event_id:
                event.hash = ring.mac(event.key_id, canonical_json(event_content(event)))
                with connection.cursor() as cursor:
                    cursor.execute(
                        "UPDATE audit_auditevent SET details = %s, prev_hash = %s, hash = %s WHERE id = %s",
                        [json.dumps(event.details), event.prev_hash, event.hash, event.id],
                    )
            previous = event.hash
        count = AuditEvent.objects.count()
        key_id, mac = ring.sign(AuditChainHead.mac_input(count, previous))
        AuditChainHead.objects.filter(pk=1).update(last_hash=previous, count=count, key_id=key_id, mac=mac)
        # The stored checkpoints would give them away (they cannot re-sign them): gone too.
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditcheckpoint")

    as_database_owner(change)


def delete_newest(n: int, *, ring: keys.KeyRing | None = None) -> None:
    """Delete the newest ``n`` records and rewind the head to the record before them."""

    def change() -> None:
        doomed = list(AuditEvent.objects.order_by("-seq").values_list("id", flat=True)[:n])
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM audit_auditevent WHERE id IN ({','.join(str(i) for i in doomed)})")
        last = AuditEvent.objects.order_by("-seq").first()
        fields = {"last_hash": last.hash, "count": last.seq}
        if ring is not None:
            fields["key_id"], fields["mac"] = ring.sign(AuditChainHead.mac_input(last.seq, last.hash))
        AuditChainHead.objects.filter(pk=1).update(**fields)

    as_database_owner(change)


def chain_of(n: int) -> list[AuditEvent]:
    return [record(f"test.{i}", details={"n": i}) for i in range(n)]


# --- the chain -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_chain_links_numbers_and_keys_records(make_user):
    user = make_user("auditor")
    first = record("cluster.created", actor=user, details={"kind": "x"})
    second = record("operation.queued", actor=user)
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS and second.prev_hash == first.hash
    assert first.key_id == keys.keyring().signing_id
    assert verify_chain() == []
    call_command("verify_audit", stdout=QUIET["stdout"])


@pytest.mark.django_db
def test_records_cannot_be_changed_or_deleted_through_the_orm():
    event = record("x.y")
    event.action = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    for attempt in (
        lambda: AuditEvent.objects.all().delete(),
        lambda: AuditEvent.objects.update(action="changed"),
        lambda: AuditEvent.objects.bulk_update([event], ["action"]),
        lambda: AuditEvent.objects.bulk_create([AuditEvent(action="forged")]),
        lambda: AuditEvent.objects.create(action="forged", created=event.created, seq=99),
        lambda: AuditCheckpoint.objects.all().delete(),
    ):
        with pytest.raises(AppendOnlyError):
            attempt()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET details = '{}'",
        "UPDATE audit_auditevent SET cluster_id = NULL",
        "DELETE FROM audit_auditevent",
        "DELETE FROM audit_auditcheckpoint",
    ],
)
def test_raw_sql_update_and_delete_are_refused_by_the_database(statement):
    record("x.y")
    create_checkpoint()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        _sql([statement])
    assert AuditEvent.objects.count() == 1 and AuditCheckpoint.objects.count() == 1


@pytest.mark.django_db
def test_triggers_exist_on_the_migrated_tables():
    names = installed(connection)
    expected = 4 if connection.vendor == "sqlite" else 2
    assert len(names) == expected, names


@pytest.mark.django_db
def test_deleting_a_cluster_or_user_leaves_records_untouched(make_user):
    user = make_user("gone")
    cluster = make_cluster("doomed", team=user.team_memberships.first().team)
    event = record("cluster.created", actor=user, obj=cluster)
    ids = (cluster.pk, user.pk)
    cluster.delete()
    user.delete()
    kept = AuditEvent.objects.get(pk=event.pk)
    assert (kept.cluster_id, kept.actor_id, kept.cluster_name, kept.actor_name) == (*ids, "doomed", "gone")
    assert verify_chain() == []


# --- tamper evidence ----------------------------------------------------------------------


@pytest.mark.django_db
def test_database_only_attacker_rewriting_a_record_is_caught_without_any_checkpoint():
    events = chain_of(5)
    rewrite(events[2].id, {"n": "forged"})
    report = verify()
    assert report.first_break.event_id == events[2].id
    with pytest.raises(CommandError, match=f"first: record #{events[2].seq}"):
        call_command("verify_audit", **QUIET)


@pytest.mark.django_db
def test_attacker_with_the_key_is_caught_by_an_exported_checkpoint(tmp_path):
    events = chain_of(5)
    call_command("audit_checkpoint", "--export", str(tmp_path / "cp.json"), stdout=QUIET["stdout"])
    chain_of(3)
    rewrite(events[1].id, {"n": "forged"}, ring=keys.keyring())
    assert verify(external=False).intact, "with the key, the rewrite is consistent inside the database ..."
    assert verify().first_break.seq == 5, "... but not with the checkpoint directory outside it"
    report = verify(load(tmp_path / "cp.json"), external=False)
    assert not report.intact, "... but not with the checkpoint kept elsewhere"
    assert report.first_break.seq == 5  # the checkpoint signed record 5 (its own record follows it)
    with pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_audit", "--checkpoint", str(tmp_path / "cp.json"), **QUIET)


@pytest.mark.django_db
def test_deleting_the_newest_records_is_detected():
    chain_of(6)
    delete_newest(2)
    reasons = " ".join(b.reason for b in verify().breaks)
    assert "head" in reasons and "MAC" in reasons


@pytest.mark.django_db
def test_deleting_the_newest_records_with_the_key_is_detected_by_the_checkpoint(tmp_path):
    chain_of(4)
    export(create_checkpoint(), tmp_path / "cp.json")
    delete_newest(2, ring=keys.keyring())
    assert not verify(load(tmp_path / "cp.json")).intact
    assert any("newest records were removed" in b.reason for b in verify(load(tmp_path / "cp.json")).breaks)


@pytest.mark.django_db
def test_a_forged_or_unreadable_checkpoint_is_refused(tmp_path):
    chain_of(2)
    export(create_checkpoint(), tmp_path / "cp.json")
    data = json.loads((tmp_path / "cp.json").read_text())
    data["seq"] = 1
    (tmp_path / "forged.json").write_text(json.dumps(data))
    assert any("signature" in b.reason for b in verify(load(tmp_path / "forged.json")).breaks)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(CommandError, match="is not JSON"):
        call_command("verify_audit", "--checkpoint", str(tmp_path / "junk.json"), **QUIET)
    with pytest.raises(CommandError, match="cannot read"):
        call_command("verify_audit", "--checkpoint", str(tmp_path / "missing.json"), **QUIET)


@pytest.mark.django_db
def test_key_rotation_keeps_old_records_verifiable_and_unknown_keys_are_named():
    old = keys.keyring()
    first = record("before.rotation")
    new_line = "k2:" + "n" * 40
    old_line = f"{old.signing_id}:" + old.secrets[old.signing_id].decode()
    try:
        with override_settings(AUDIT_KEYS=f"{new_line},{old_line}"):
            keys.reset()
            second = record("after.rotation")
            assert second.key_id == "k2" and first.key_id == old.signing_id
            assert verify().intact
        with override_settings(AUDIT_KEYS=old_line):
            keys.reset()
            report = verify()
            assert report.first_break.seq == second.seq and "'k2'" in report.first_break.reason
    finally:
        keys.reset()


def test_malformed_audit_keys_are_refused_without_echoing_them():
    from django.core.exceptions import ImproperlyConfigured

    for raw in ("short:abc", "noid", "bad id!:" + "x" * 40, "a:" + "x" * 40 + ",a:" + "y" * 40, ""):
        with pytest.raises(ImproperlyConfigured) as error:
            keys.parse_keys(raw)
        assert "x" * 40 not in str(error.value) and "abc" not in str(error.value)


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_valid_chain():
    writers, each = 4, 25
    barrier = threading.Barrier(writers)

    def write(index: int) -> None:
        try:
            barrier.wait()
            for n in range(each):
                with audit_context(source=f"test:writer{index}"):
                    record("test.concurrent", details={"writer": index, "n": n})
        finally:
            connection.close()

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, writers * each + 1))
    assert verify().intact


@pytest.mark.django_db(transaction=True)
def test_a_failed_append_leaves_the_chain_whole_and_the_connection_usable():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite does not enforce a column's length; the own-transaction append is PostgreSQL's")
    record("test.before")
    # The insert fails on the server after the head was locked: the append's own transaction is rolled back.
    overlong = Cluster(pk=987654, name="c" * 80)
    with pytest.raises(DataError):
        record("test.overlong", cluster=overlong)
    record("test.after")
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", "action")) == [
        (1, "test.before"),
        (2, "test.after"),
    ]
    assert AuditChainHead.objects.get(pk=1).count == 2
    assert verify().intact


# --- what a record says ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "details", [{"secret": "x"}, {"nested": {"private_key": "x"}}, {"v": SecretValue(plaintext="x")}]
)
def test_secrets_are_refused_in_details(details):
    with pytest.raises(AuditSecretError):
        record("token.created", details=details)
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_snapshots_mask_encrypted_fields_and_keep_what_changed(make_user):
    from nodes.models import Node

    cluster = make_cluster("snap")
    node = Node(cluster=cluster, name="n1", address="10.0.0.5", ssh_password="hunter2-secret")
    node.save()
    before = snapshot(node)
    assert before["ssh_password"] == SECRET_SET and before["ssh_private_key"] == ""
    node.address = "10.0.0.6"
    event = record("node.updated", obj=node, before=before, after=snapshot(node))
    assert event.changes["before"]["address"] == "10.0.0.5" and event.changes["after"]["address"] == "10.0.0.6"
    assert "ssh_password" not in event.changes["after"], "unchanged fields are left out"
    stored = json.dumps(AuditEvent.objects.values("details", "changes").get(pk=event.pk))
    assert "hunter2" not in stored


@pytest.mark.django_db
def test_records_of_one_context_share_a_correlation_id_and_background_work_continues_it(make_user):
    user = make_user("corr")
    cluster = make_cluster("corr")
    with audit_context(actor=user, source="web", source_address="10.1.2.3", user_agent="pytest") as ctx:
        first = record("cluster.created", obj=cluster)
        second = record("operation.queued", obj=cluster)
    assert first.request_id == second.request_id == ctx.correlation_id
    assert (first.actor_name, first.source, first.source_address, first.user_agent) == (
        "corr",
        "web",
        "10.1.2.3",
        "pytest",
    )
    assert correlation_id_of(cluster) == ctx.correlation_id
    with audit_context(correlation_id=correlation_id_of(cluster), source="worker:test"):
        later = record("operation.succeeded", obj=cluster)
    assert later.request_id == ctx.correlation_id and later.source == "worker:test"
    outside = record("other")
    assert outside.request_id == "" and outside.source == "system" and outside.actor_name == "system"


@pytest.mark.django_db
def test_web_requests_get_a_request_id_and_their_records_carry_it(client, make_user):
    response = client.get("/login/", HTTP_USER_AGENT="Browser/1.0")
    assert len(response["X-Request-ID"]) == 36
    assert response["Content-Security-Policy"].startswith("default-src 'self'")
    user = make_user("webby")
    client.force_login(user)
    response = client.post("/logout/", HTTP_USER_AGENT="Browser/1.0")
    event = AuditEvent.objects.get(action="auth.logout")
    assert event.request_id == response["X-Request-ID"]
    assert (event.actor_name, event.source, event.source_address, event.user_agent) == (
        "webby",
        "web",
        "127.0.0.1",
        "Browser/1.0",
    )


# --- upgrade from records written before keys -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_upgrade_numbers_old_records_and_seals_them_with_a_keyed_record():
    import hashlib

    from django.utils import timezone

    call_command("migrate", "audit", "0002", verbosity=0)
    try:
        previous = GENESIS
        with connection.cursor() as cursor:
            for n in range(3):
                created = timezone.now()
                data = {
                    "created": created.isoformat(),
                    "actor": "system",
                    "action": f"old.{n}",
                    "object_type": "",
                    "object_id": "",
                    "object_repr": "",
                    "cluster": "",
                    "details": {"n": n},
                    "prev": previous,
                }
                digest = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
                cursor.execute(
                    "INSERT INTO audit_auditevent (created, actor_name, action, object_type, object_id, object_repr, "
                    "cluster_name, details, prev_hash, hash) VALUES (%s, 'system', %s, '', '', '', '', %s, %s, %s)",
                    [created, f"old.{n}", json.dumps({"n": n}), previous, digest],
                )
                previous = digest
            cursor.execute("INSERT INTO audit_auditchainhead (id, last_hash, count) VALUES (1, %s, 3)", [previous])
    finally:
        call_command("migrate", "audit", verbosity=0)
    marker = AuditEvent.objects.get(action="audit.chain_upgraded")
    assert marker.seq == 4 and marker.prev_hash == previous and marker.key_id
    assert list(AuditEvent.objects.filter(key_id="").values_list("seq", flat=True).order_by("seq")) == [1, 2, 3]
    report = verify()
    assert report.intact and (report.legacy, report.keyed) == (3, 1)
    # An old record rewritten with its SHA-256 chain recomputed no longer links to the sealing record.
    old = AuditEvent.objects.get(seq=2)

    def change() -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditevent SET details = %s WHERE id = %s", ['{"n": 99}', old.id])
        previous_hash = AuditEvent.objects.get(seq=1).hash
        for event in AuditEvent.objects.filter(seq__in=[2, 3]).order_by("seq"):
            event.prev_hash = previous_hash
            new_hash = event.legacy_hash()
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
                    [previous_hash, new_hash, event.id],
                )
            previous_hash = new_hash

    as_database_owner(change)
    assert verify().first_break.seq == 4


@pytest.mark.django_db
def test_a_task_queued_in_a_request_continues_its_correlation_id(make_user):
    from django_q.tasks import async_task

    user = make_user("queuer")
    with audit_context(actor=user, source="web") as ctx:
        async_task("audit.services.record", "task.ran", sync=True)
    ran = AuditEvent.objects.get(action="task.ran")
    assert ran.request_id == ctx.correlation_id and ran.actor_name == "queuer"
    assert ran.source.startswith("worker:")
    async_task("audit.services.record", "task.alone", sync=True)
    alone = AuditEvent.objects.get(action="task.alone")
    assert alone.request_id not in ("", ctx.correlation_id) and alone.actor_name == "system"

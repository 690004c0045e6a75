"""Migration 0013 drops the staging table of the former grouped sealing without losing a record
Kubeboard staged: a leftover with its writer's valid HMAC joins the chain, a row a database
writer put there does not."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit import keys
from audit.chain import verify
from audit.models import AuditEvent, canonical_json, event_content
from audit.services import record

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BEFORE = [("audit", "0012_staged_mac")]
AFTER = [("audit", "0013_no_staging")]


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def _staged_mac(staged_id: int, fields: dict) -> tuple[str, str]:
    """What a writer of migrations 0010-0012 signed: the row's id and the record's content
    without its place in the chain."""
    content = event_content(AuditEvent(**fields))
    for sealed in ("seq", "prev", "key_id"):
        content.pop(sealed)
    return keys.keyring().sign(canonical_json({"staged": staged_id, **content}))


def test_leftover_staged_records_join_the_chain_and_forged_rows_do_not(capsys):
    record("test.first")
    try:
        staged_model = _migrate(BEFORE).get_model("audit", "AuditStaged")
        fields = {"created": timezone.now(), "actor_name": "worker", "action": "test.orphan", "details": {"pid": 1}}
        key_id, mac = _staged_mac(900, fields)
        staged_model.objects.create(id=900, stage_key_id=key_id, stage_mac=mac, **fields)
        forged = {**fields, "actor_name": "mallory", "action": "cluster.deleted"}
        staged_model.objects.create(id=901, stage_key_id=key_id, stage_mac="0" * 64, **forged)
    finally:
        _migrate(AFTER)

    assert list(AuditEvent.objects.order_by("seq").values_list("action", "actor_name")) == [
        ("test.first", "system"),
        ("test.orphan", "worker"),
    ]
    assert AuditEvent.objects.get(action="test.orphan").details == {"pid": 1}
    assert "dropped staged row 901 (cluster.deleted): its MAC does not verify" in capsys.readouterr().out
    assert "audit_auditstaged" not in connection.introspection.table_names()
    assert verify().intact

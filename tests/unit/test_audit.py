"""The audit trail is append-only and any edit or removal is detected."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.models import AuditEvent
from audit.services import AuditSecretError, record, verify_chain
from core.encryption import SecretValue
from core.models import AppendOnlyError

pytestmark = pytest.mark.postgres


@pytest.mark.django_db
def test_chain_links_records_and_verifies(make_user):
    user = make_user("auditor")
    first = record("cluster.created", actor=user, details={"kind": "x"})
    second = record("operation.queued", actor=user)
    assert second.prev_hash == first.hash
    assert first.prev_hash == AuditEvent.GENESIS
    assert verify_chain() == []
    call_command("verify_audit", stdout=open("/dev/null", "w"))


@pytest.mark.django_db
def test_records_cannot_be_changed_or_deleted_through_the_orm():
    event = record("x.y")
    event.action = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update(action="changed")


@pytest.mark.django_db
def test_edit_behind_the_orm_is_detected():
    record("a")
    middle = record("b", details={"n": 1})
    record("c")
    with connection.cursor() as cursor:
        cursor.execute("update audit_auditevent set details = %s where id = %s", ['{"n": 2}', middle.id])
    breaks = verify_chain()
    assert [b.event_id for b in breaks] == [middle.id]
    with pytest.raises(CommandError):
        call_command("verify_audit", stdout=open("/dev/null", "w"), stderr=open("/dev/null", "w"))


@pytest.mark.django_db
def test_removal_is_detected():
    record("a")
    middle = record("b")
    last = record("c")
    with connection.cursor() as cursor:
        cursor.execute("delete from audit_auditevent where id = %s", [middle.id])
    assert any(b.event_id == last.id for b in verify_chain())


@pytest.mark.django_db
def test_removal_of_newest_record_is_detected():
    record("a")
    last = record("b")
    with connection.cursor() as cursor:
        cursor.execute("delete from audit_auditevent where id = %s", [last.id])
    assert verify_chain(), "deleting the newest record must break the chain head"


@pytest.mark.django_db
@pytest.mark.parametrize("details", [{"secret": "x"}, {"nested": {"private_key": "x"}}, {"v": SecretValue(plaintext="x")}])
def test_secrets_are_refused_in_details(details):
    with pytest.raises(AuditSecretError):
        record("token.created", details=details)
    assert AuditEvent.objects.count() == 0

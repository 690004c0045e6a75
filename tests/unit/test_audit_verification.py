"""The scheduled verification of the audit trail: its schedule and interval, the ERROR it logs,
the banner superusers and team admins see on every page, and what the history page says."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from audit.checkpoints import create_checkpoint
from audit.services import record
from audit.triggers import remove_sql
from audit.verification import STATUS_FILE, latest, scheduled_verify

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def age_last_verification(directory, hours: float) -> None:
    """Make the newest stored verification look ``hours`` old."""
    path = directory / STATUS_FILE
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    last["checked_at"] = (timezone.now() - timedelta(hours=hours)).isoformat()
    path.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")


def tamper_with_record(seq: int) -> None:
    with connection.cursor() as cursor:
        for statement in remove_sql(connection.vendor):
            cursor.execute(statement)
        cursor.execute("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = %s", [seq])


def test_the_verification_runs_on_a_django_q_schedule():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="audit: verify")
    assert schedule.func == "audit.verification.scheduled_verify" and schedule.repeats == -1


def test_scheduled_verification_runs_when_due_and_the_history_page_says_what_it_checked(
    client, make_user, audit_checkpoint_dir
):
    for n in range(4):
        record("test.record", details={"n": n})
    create_checkpoint()
    record("audit.checkpoint_created", details={"seq": 4})
    assert scheduled_verify() is True
    assert scheduled_verify() is None, "not due again before the interval"
    age_last_verification(audit_checkpoint_dir, 24)
    with override_settings(AUDIT_VERIFY_MINUTES=0):
        assert scheduled_verify() is None, "0 turns it off"
    assert scheduled_verify() is True, "due again after the interval"
    row = latest()
    assert row.intact and row.last_seq == 5 and row.checkpoint_seq == 5
    # Kept outside the database, beside the checkpoints: a database writer cannot fake it.
    assert len((audit_checkpoint_dir / STATUS_FILE).read_text().splitlines()) == 2

    client.force_login(make_user("vera", role="viewer"))
    page = client.get(reverse("audit:history")).content.decode()
    assert "Trail verified at" in page and "up to record 5" in page
    assert "against the external checkpoint at record 5" in page
    assert 'id="audit-alarm"' not in page


def test_a_failed_verification_logs_an_error_and_alarms_superusers_and_team_admins_on_every_page(
    client, make_user, caplog, audit_checkpoint_dir
):
    for n in range(5):
        record("test.record", details={"n": n})
    assert scheduled_verify() is True
    age_last_verification(audit_checkpoint_dir, 2)
    tamper_with_record(3)
    with caplog.at_level(logging.ERROR, logger="audit.verification"):
        assert scheduled_verify() is False
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("first broken: record #3" in message for message in errors), errors

    pages = [reverse("clusters:list"), reverse("audit:history"), reverse("teams:list")]
    for user, alarmed in [
        (make_user("root", team=None, superuser=True), True),
        (make_user("ada", role="admin"), True),
        (make_user("otto", role="operator"), False),
        (make_user("vic", role="viewer"), False),
    ]:
        client.force_login(user)
        for url in pages:
            page = client.get(url).content.decode()
            assert ('id="audit-alarm"' in page) is alarmed, (user.username, url)
            if alarmed:
                assert "The audit trail did not verify" in page and "record #3" in page
    page = client.get(reverse("audit:history")).content.decode()
    assert "Trail did NOT verify" in page and "first broken record #3" in page

"""The operation page and its controls through Django's test client: what a viewer and an
operator see, resume with skipped phases, cancel, the text log, readable durations."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client

import tests.support.kinds  # noqa: F401  (registers the test kinds)
from audit.models import AuditEvent
from operations.formatting import seconds_text
from operations.models import Operation
from operations.runner import run_operation
from operations.services import start_operation
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster(make_user):
    return make_cluster(team=Group.objects.get_or_create(name="platform")[0])


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def failed_grouped_operation(cluster, user) -> Operation:
    plan = [["", "prepare"], ["n1", "work"], ["n1", "finish"], ["n2", "work"], ["n2", "finish"]]
    operation = start_operation(
        cluster, "test-steps", user=user, params={"plan": plan, "parallel": 2, "fail": {"n2:work": 1}}
    )
    assert run_operation(operation.pk) == "failed"
    return operation


def test_seconds_text():
    assert seconds_text(0.96) == "0.96 s"
    assert seconds_text(12.34) == "12.3 s"
    assert seconds_text(125) == "2 min 5 s"
    assert seconds_text(3780) == "1 h 3 min"
    assert seconds_text(None) == ""


def test_page_shows_groups_hints_attempts_and_controls(cluster, operator, make_user):
    operation = failed_grouped_operation(cluster, operator)
    page = client_for(operator).get(operation.get_absolute_url()).content.decode()
    assert '<li class="phase-group" data-group="n1">' in page and '<li class="phase-group" data-group="n2">' in page
    assert 'data-key="n2:work"' in page and 'data-status="failed"' in page
    assert "What to do next" in page and "Fix the machine, then resume." in page
    assert "Resume from the failed phase" in page
    assert 'id="cancel-form"' in page and re.search(r'id="cancel-form"[^>]*hidden', page, re.S)
    # Skip choices are the phases not finished yet, by their group:name.
    assert re.findall(r'name="skip" value="([^"]+)"', page) == ["n2:work", "n2:finish"]
    assert "2 of 5" not in page and "3 of 5 phases done" in page
    # Durations are read as people read them, never as timedelta reprs.
    assert not re.search(r"(?<![T\d])\d+:\d\d:\d\d\.\d{6}", page)
    assert re.search(r'class="phase-duration">\d+\.\d\d s<', page)

    viewer = make_user("vera", role="viewer")
    seen = client_for(viewer).get(operation.get_absolute_url()).content.decode()
    assert "n2:work" in seen and 'id="resume-form"' not in seen and 'id="cancel-form"' not in seen
    assert client_for(viewer).post(f"/operations/{operation.pk}/resume/").status_code == 403
    assert client_for(viewer).post(f"/operations/{operation.pk}/cancel/").status_code == 403


def test_resume_with_skips_needs_a_reason_and_records_it(cluster, operator):
    operation = failed_grouped_operation(cluster, operator)
    client = client_for(operator)
    response = client.post(f"/operations/{operation.pk}/resume/", {"skip": ["n2:work"]}, follow=True)
    assert "Say why these phases are skipped" in response.content.decode()
    operation.refresh_from_db()
    assert operation.status == "failed", "a refused form changes nothing"

    response = client.post(f"/operations/{operation.pk}/resume/", {"skip": ["n2:work"], "reason": "joined by hand"})
    assert response.status_code == 302
    operation.refresh_from_db()
    assert operation.status == "queued"
    assert (
        operation.phases.get(group="n2", name="work").skip_reason == f"skipped by {operator.username}: joined by hand"
    )
    audit = AuditEvent.objects.get(action="operation.resumed")
    assert audit.details == {"automatic": False, "skipped": ["n2:work"], "skip_reason": "joined by hand"}
    assert run_operation(operation.pk) == "succeeded"

    response = client.post(f"/operations/{operation.pk}/resume/", follow=True)
    assert "only a failed, interrupted or cancelled operation can be resumed" in response.content.decode()


def test_cancel_from_the_page(cluster, operator):
    operation = start_operation(cluster, "test-steps", user=operator)
    page = client_for(operator).get(operation.get_absolute_url()).content.decode()
    assert re.search(r'<form[^>]*id="cancel-form" data-confirm="[^"]+"\s*>', page), "shown, with a confirmation"
    client_for(operator).post(f"/operations/{operation.pk}/cancel/")
    operation.refresh_from_db()
    assert operation.status == "cancelled"
    page = client_for(operator).get(operation.get_absolute_url()).content.decode()
    assert "Resume from the cancelled phase" in page


def test_log_as_text(cluster, operator):
    operation = failed_grouped_operation(cluster, operator)
    response = client_for(operator).get(f"/operations/{operation.pk}/log.txt")
    assert response["Content-Type"].startswith("text/plain")
    text = b"".join(response).decode()  # daphne streams it; the test client gathers it
    assert text.startswith(f"# Test steps #{operation.pk} on {cluster.name} — Failed\n")
    assert re.search(r"==> n2:work: failed \(\d+\.\d\d s, exit status 3\)\n +n2:work failed on purpose", text)
    assert "what to do: Fix the machine, then resume." in text
    assert "=== operation failed" in text
    assert text.count("\n") >= operation.events.count()


def test_cluster_panel_lists_operations_with_readable_durations(cluster, operator):
    operation = start_operation(cluster, "test-steps", user=operator)
    run_operation(operation.pk)
    page = client_for(operator).get(cluster.get_absolute_url()).content.decode()
    assert f'href="/operations/{operation.pk}/"' in page and "Test steps" in page
    assert re.search(r"<td>\d+\.\d\d s</td>", page)

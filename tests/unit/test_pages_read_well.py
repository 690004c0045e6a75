"""Pages read well: shared formatting (durations, times with their zone, relative times, status
words), styled error pages, a favicon, and a summary on top of a form with several errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from core import formatting
from tests.conftest import team_of


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.964504, "0.96 s"),
        (12.34, "12.3 s"),
        (125, "2 min 5 s"),
        (3780, "1 h 3 min"),
        (timedelta(seconds=61), "1 min 1 s"),
    ],
)
def test_durations(seconds, text):
    assert formatting.seconds_text(seconds) == text


def test_times_carry_their_zone_and_relative_times_read_as_words():
    moment = datetime(2026, 11, 27, 7, 54, 43, tzinfo=UTC)
    assert formatting.time_text(moment) == "2026-11-27 07:54:43 UTC"
    assert formatting.relative_text(moment, now=moment + timedelta(minutes=3, seconds=10)) == "3 min ago"
    assert formatting.relative_text(moment, now=moment + timedelta(seconds=2)) == "just now"
    assert formatting.relative_text(moment, now=moment - timedelta(hours=5)) == "in 5 h"
    assert formatting.relative_text(moment, now=moment + timedelta(days=3)) == "3 days ago"


def test_one_status_vocabulary():
    from audit.models import AuditEvent
    from operations.models import Operation, PhaseAttempt, PhaseRun

    for model in (Operation, PhaseRun, PhaseAttempt):
        for value, label in model.Status.choices:
            assert label == formatting.status_word(value), (model.__name__, value, label)
    for value, label in AuditEvent.Outcome.choices:
        assert label == formatting.status_word(value)


def test_template_filters_render_time_elements():
    from django.template import Context, Template

    moment = timezone.now() - timedelta(minutes=3)
    html = Template(
        "{% load kubeboard %}{{ t|when }}|{{ t|when_ago }}|{{ d|duration }}|{% status_badge 'succeeded' %}"
    ).render(Context({"t": moment, "d": timedelta(seconds=0.964504)}))
    assert "UTC</time>" in html and 'title="3 min ago"' in html and "· 3 min ago" in html
    assert "0.96 s" in html and '<span class="status status-succeeded">Succeeded</span>' in html


@pytest.mark.django_db
def test_not_found_and_forbidden_are_styled_pages(client, make_user):
    viewer = make_user("vera", role="viewer")
    client.force_login(viewer)
    missing = client.get("/clusters/nowhere/")
    assert missing.status_code == 404
    text = missing.content.decode()
    assert 'id="error-page"' in text and "Not found" in text and "favicon.svg" in text and "/nowhere/" in text
    forbidden = client.get("/clusters/new/")
    assert forbidden.status_code == 403
    text = forbidden.content.decode()
    assert 'id="error-page"' in text and "operator or admin role" in text


def test_server_error_page_needs_no_database():
    from django.views.defaults import server_error

    response = server_error(RequestFactory().get("/boom/"))
    assert response.status_code == 500
    assert b"Something went wrong" in response.content and b"favicon.svg" in response.content


@pytest.mark.django_db
def test_a_form_with_several_errors_has_a_summary_on_top(client, operator):
    client.force_login(operator)
    data = {
        "name": "Prod_EU",
        "kubernetes_version": "banana",
        "control_plane_endpoint": "http://x",
        "pod_subnet": "10.244.0.0/16",
        "service_subnet": "10.96.0.0/12",
        "dns_domain": "cluster.local",
        "image_repository": "registry.k8s.io",
        "encryption_algorithm": "RSA-2048",
        "team": team_of(operator).pk,
    }
    text = client.post("/clusters/new/", data).content.decode()
    summary = text[text.index('id="error-summary"') : text.index("</div>", text.index('id="error-summary"'))]
    assert "3 things to fix" in summary
    assert 'href="#id_name"' in summary and 'href="#id_kubernetes_version"' in summary
    assert "a scheme is not allowed" in summary
    assert text.index('id="error-summary"') < text.index('id="error-name"'), "the summary comes first"
    one = client.post("/clusters/new/", data | {"kubernetes_version": "1.37", "control_plane_endpoint": "10.0.0.1"})
    assert 'id="error-summary"' not in one.content.decode(), "a single mistake needs no summary"


def test_audit_details_read_as_key_values_even_nested():
    from audit.templatetags.audit_tags import key_values

    html = key_values({"removed": {"events": 3, "bootstrap_tokens": 1}, "team": None, "machines_touched": False})
    assert "<dt>removed</dt><dd>bootstrap tokens: 1, events: 3</dd>" in html
    assert "<dt>team</dt><dd>—</dd>" in html and "<dt>machines touched</dt><dd>no</dd>" in html
    assert "{" not in html and "None" not in html


@pytest.mark.django_db
def test_every_form_gets_the_summary(client, make_user):
    from tests.factories import make_cluster

    admin = make_user("ada", role="admin")
    make_cluster("c1", team=team_of(admin))
    client.force_login(admin)
    for url, data in (
        ("/clusters/c1/nodes/_add/", {"name": "Bad Name", "address": "http://x", "ssh_port": "0", "ssh_user": "root"}),
        ("/clusters/c1/tokens/new/", {"ttl": "banana", "usages": ["nonsense"]}),
        ("/clusters/adopt/", {"name": "Prod_EU"}),
    ):
        text = client.post(url, data).content.decode()
        assert 'id="error-summary"' in text, url
        assert "things to fix" in text, url

"""A refused request (403) is logged as one line with the user, the path and the reason, without
a traceback: a role refusal, a CSRF failure, and the line the console handler writes. The real
server's log: tests/integration/test_session_revocation.py."""

from __future__ import annotations

import io
import logging

import pytest
from django.test import Client

from tests.conftest import team_of
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db


def forbidden_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "status_code", None) == 403]


def test_a_role_refusal_is_one_line_with_user_path_and_reason(make_user, caplog):
    viewer = make_user("vera", role="viewer")
    cluster = make_cluster("c1", team=team_of(viewer))
    client = Client()
    client.force_login(viewer)
    with caplog.at_level(logging.INFO):
        response = client.post(f"/clusters/{cluster.name}/initialize/")
    assert response.status_code == 403
    [record] = forbidden_records(caplog)
    line = record.getMessage()
    assert line == (
        f"forbidden: user=vera path=/clusters/{cluster.name}/initialize/ "
        f"reason=your role in team {team_of(viewer).name} does not allow 'operate'"
    )
    assert record.exc_info is None and record.exc_text is None
    assert not [r for r in caplog.records if r.exc_info]


def test_a_csrf_failure_is_one_line_naming_the_check(make_user, caplog):
    operator = make_user("otto", role="operator")
    cluster = make_cluster("c1", team=team_of(operator))
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    with caplog.at_level(logging.INFO):
        response = client.post(f"/clusters/{cluster.name}/initialize/")
    assert response.status_code == 403
    [record] = forbidden_records(caplog)
    assert record.getMessage().startswith(
        f"forbidden: user=otto path=/clusters/{cluster.name}/initialize/ reason=CSRF check failed: "
    )
    assert record.exc_info is None


def test_an_anonymous_refusal_and_a_hostile_path_stay_on_one_line(caplog):
    from django.contrib.auth.models import AnonymousUser
    from django.core.exceptions import PermissionDenied
    from django.test import RequestFactory
    from django.utils.log import log_response

    request = RequestFactory().get("/x")
    request.path = "/x\nFAKE 500 line/"  # what a decoded %0A in a URL becomes
    request.user = AnonymousUser()
    response = type("R", (), {"status_code": 403})()
    try:
        raise PermissionDenied("no\nway")
    except PermissionDenied as exc:
        with caplog.at_level(logging.INFO):
            log_response(
                "Forbidden (Permission denied): %s", request.path, response=response, request=request, exception=exc
            )
    [record] = forbidden_records(caplog)
    assert "\n" not in record.getMessage()
    assert record.getMessage() == "forbidden: user=anonymous path=/x\\nFAKE 500 line/ reason=no\\nway"


def test_the_console_writes_no_traceback_for_a_refusal(make_user):
    # What an operator reads: the console handler's own output, as configured in settings.LOGGING.
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "name", None) == "console")
    viewer = make_user("vera", role="viewer")
    cluster = make_cluster("c1", team=team_of(viewer))
    client = Client()
    client.force_login(viewer)
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    try:
        assert client.post(f"/clusters/{cluster.name}/initialize/").status_code == 403
    finally:
        handler.setStream(old_stream)
    written = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert len(written) == 1, written
    assert "WARNING django.request forbidden: user=vera path=" in written[0]
    assert "Traceback" not in stream.getvalue()

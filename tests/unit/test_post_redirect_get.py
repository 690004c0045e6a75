"""Post/Redirect/Get: every POST that changes something answers with a redirect to a GET page, so a
reload shows that page again and repeats nothing. A new token, shown once, survives the redirect
in the session (encrypted) for exactly one read.

The routes and how to make each POST succeed come from tests/audit_coverage.py (the same walk as
tests/unit/test_audit_coverage.py).
"""

from __future__ import annotations

import json

import pytest
from django.contrib.sessions.models import Session
from django.db import transaction
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests import audit_coverage as ac
from tests import permission_matrix as pm
from tests.unit.test_audit_coverage import _encode
from tests.unit.test_permission_matrix import url_for
from tokens.models import BootstrapToken
from tokens.views import hold_for_one_read

pytestmark = pytest.mark.django_db

# Answers that are not a page a reload could repeat: each one only reads (and is audited as a read).
NOT_A_PAGE = {
    "tokens:reveal": "a fragment shown in place on the tokens page (htmx); a reload reloads that page",
    "tokens:join_command": "a fragment shown in place on the tokens page (htmx)",
    "tokens:certificate_key_reveal": "a fragment shown in place on the tokens page (htmx)",
    "daytwo:snapshot-download": "a file download: the browser stays on the backups page",
}

SUCCEEDING = sorted(
    key
    for key, methods in ac.ROUTES.items()
    if isinstance(methods.get("POST"), ac.Audited) and methods["POST"].outcome == "success"
)


def test_the_walk_covers_the_actions_and_exempts_only_reads():
    assert len(SUCCEEDING) >= 20, SUCCEEDING
    assert set(NOT_A_PAGE) <= set(SUCCEEDING), "an exemption names a route that is not walked"


@pytest.mark.parametrize("key", SUCCEEDING)
def test_a_successful_post_answers_with_a_redirect(key):
    entry = ac.ROUTES[key]["POST"]
    world = pm.build_world()
    if entry.setup:
        entry.setup(world)
    client = Client()
    if world.users[entry.role] is not None:
        client.force_login(world.users[entry.role])
    url = url_for(key, pm.MATRIX[key], world)
    with transaction.atomic():  # queued tasks (on_commit) are not run here
        response = client.post(url, _encode(entry.data(world)), content_type="application/x-www-form-urlencoded")
    if key in NOT_A_PAGE:
        assert response.status_code == 200, f"POST {key} answered {response.status_code}"
        return
    assert response.status_code in (302, 303), (
        f"POST {key} succeeded and answered {response.status_code} with a page: a reload would post it again. "
        "Redirect to a GET page (Post/Redirect/Get)."
    )
    assert client.get(response["Location"]).status_code == 200, f"POST {key} redirects to {response['Location']}"


def test_a_successful_login_answers_with_a_redirect():
    world = pm.build_world()
    world.users["admin"].set_password("right-password-123")
    world.users["admin"].save()
    response = Client().post(reverse("login"), {"username": "blue-admin", "password": "right-password-123"})
    assert response.status_code == 302


@pytest.fixture
def world():
    return pm.build_world()


def _created_page(client: Client, token: BootstrapToken):
    return client.get(reverse("tokens:created", args=[token.cluster.name, token.token_id]))


def test_the_new_token_is_shown_once_and_a_reload_creates_nothing(world):
    token = world.token
    full = f"{token.token_id}.{token.plain_secret()}"
    client = Client()
    client.force_login(world.users["operator"])
    session = client.session
    hold_for_one_read(session, token, full, title="Token created")  # what a successful create leaves
    session.save()
    stored = json.dumps(Session.objects.get(session_key=session.session_key).get_decoded())
    assert token.plain_secret() not in stored, "the session holds the token encrypted, never in clear"
    tokens_before = BootstrapToken.objects.count()
    records_before = AuditEvent.objects.count()

    first = _created_page(client, token)
    assert first.status_code == 200
    assert full in first.content.decode() and "Token created" in first.content.decode()
    assert "no-store" in first["Cache-Control"]

    reload = _created_page(client, token)
    assert reload.status_code == 200
    assert full not in reload.content.decode(), "a reload shows the token no more"
    assert token.plain_secret() not in reload.content.decode()
    assert 'id="already-shown"' in reload.content.decode()
    assert BootstrapToken.objects.count() == tokens_before, "a reload creates no token"
    assert AuditEvent.objects.count() == records_before, "a reload repeats no action"
    assert full not in json.dumps(Session.objects.get(session_key=session.session_key).get_decoded())


def test_another_users_session_never_shows_the_new_token(world):
    token = world.token
    full = f"{token.token_id}.{token.plain_secret()}"
    creator = Client()
    creator.force_login(world.users["operator"])
    session = creator.session
    hold_for_one_read(session, token, full, title="Token created")
    session.save()
    other = Client()
    other.force_login(world.users["admin"])
    assert full not in _created_page(other, token).content.decode()
    assert full in _created_page(creator, token).content.decode(), "still there for its one read"


def test_the_page_of_one_token_never_shows_another_held_token(world):
    token = world.token
    other = BootstrapToken.objects.create(cluster=token.cluster, token_id="zzzzzz", secret="0123456789zzzzzz")
    client = Client()
    client.force_login(world.users["operator"])
    session = client.session
    hold_for_one_read(session, token, f"{token.token_id}.{token.plain_secret()}", title="Token created")
    session.save()
    assert token.plain_secret() not in _created_page(client, other).content.decode()

"""A user changes their own password (issue 18, teams onboarding), and must at first login when a
superuser made the account with a one-time password: every page leads to the form until then,
logging out excepted. The change is audited as ``user.password_changed`` without any password;
a wrong old password is a mistake on the form that changes and records nothing."""

from __future__ import annotations

import html
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.models import AuditEvent
from teams.models import AccountProfile
from tests.conftest import team_of

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "my-own-password-4711"
REQUIRED = 'id="password-change-required"'


@pytest.fixture
def root(make_user):
    return make_user("root", team=None, superuser=True)


@pytest.fixture
def newcomer(root, make_user) -> tuple[str, str]:
    """An account a superuser made on the Teams page: its name and its one-time password."""
    team = team_of(make_user("alice", role="admin"))
    superuser = Client()
    superuser.force_login(root)
    superuser.post("/teams/users/new/", {"username": "newcomer", "team": team.pk, "role": "operator"})
    return "newcomer", superuser.get("/teams/users/new/").context["password"]


def _log_in(username: str, password: str) -> tuple[Client, object]:
    """Through the login page, as a person does (its hooks and django-axes included)."""
    client = Client()
    response = client.post("/login/", {"username": username, "password": password}, follow=True)
    return client, response


def _records_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("details", "changes", "object_repr")))


def test_a_one_time_password_must_be_changed_before_anything_else(newcomer):
    username, one_time = newcomer
    assert AccountProfile.objects.get(user__username=username).must_change_password
    client, landed = _log_in(username, one_time)
    assert landed.redirect_chain[-1][0] == "/password/" and REQUIRED in landed.content.decode()
    for path in ("/clusters/", "/teams/", "/audit/", "/clusters/new/"):
        response = client.get(path)
        assert (response.status_code, response["Location"]) == (302, "/password/"), path
    refused = client.post("/teams/new/", {"name": "sneaky"})
    assert (refused.status_code, refused["Location"]) == (302, "/password/")
    assert not AuditEvent.objects.filter(action="team.created").exists()
    form = client.get("/password/")
    assert form.status_code == 200 and form["Cache-Control"] == "no-store"
    assert client.get("/healthz").status_code == 200
    # Logging out stays possible, and the next login is led to the form again.
    assert client.post("/logout/")["Location"] == "/login/"
    client, landed = _log_in(username, one_time)
    assert landed.redirect_chain[-1][0] == "/password/"

    changed = client.post(
        "/password/", {"old_password": one_time, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert (changed.status_code, changed["Location"]) == (302, "/clusters/")
    page = client.get("/clusters/")
    assert page.status_code == 200, "this browser stays logged in and is let through"
    assert "Your password was changed." in [str(m) for m in page.context["messages"]]
    account = get_user_model().objects.get(username=username)
    assert account.check_password(NEW_PASSWORD) and not account.check_password(one_time)
    assert not AccountProfile.objects.get(user=account).must_change_password
    record = AuditEvent.objects.get(action="user.password_changed")
    assert (record.outcome, record.actor_name, record.object_id) == ("success", username, str(account.pk))
    assert record.details == {"username": username, "required": True, "via": "password page"}
    everything = _records_text()
    assert one_time not in everything and NEW_PASSWORD not in everything
    # The next login goes where it was asked to, not to the form.
    again, landed = _log_in(username, NEW_PASSWORD)
    assert landed.redirect_chain[-1][0] == "/clusters/" and landed.status_code == 200
    assert again.get("/teams/").status_code == 200


def test_a_wrong_old_password_is_a_mistake_that_changes_and_records_nothing(newcomer):
    username, one_time = newcomer
    client, _ = _log_in(username, one_time)
    wrong = client.post(
        "/password/", {"old_password": "not-" + one_time, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    page = html.unescape(wrong.content.decode())
    assert wrong.status_code == 400 and wrong["Cache-Control"] == "no-store"
    assert "Your old password was entered incorrectly. Please enter it again." in page
    assert "For your safety it was not sent back: type it again." in page
    assert NEW_PASSWORD not in page and one_time not in page, "no password is sent back"
    assert REQUIRED in page
    mismatch = client.post(
        "/password/", {"old_password": one_time, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"}
    )
    assert mismatch.status_code == 400 and "The two password fields didn’t match." in html.unescape(
        mismatch.content.decode()
    )
    assert get_user_model().objects.get(username=username).check_password(one_time)
    assert not AuditEvent.objects.filter(action="user.password_changed").exists()
    assert client.get("/clusters/")["Location"] == "/password/", "still required"


def test_anyone_changes_their_own_password_from_the_header(make_user):
    make_user("vera", role="viewer")
    client, landed = _log_in("vera", "pw-vera")
    assert landed.redirect_chain[-1][0] == "/clusters/", "an ordinary account is not led to the form"
    assert 'href="/password/"' in landed.content.decode()
    form = client.get("/password/")
    assert form.status_code == 200 and REQUIRED not in form.content.decode()
    elsewhere, _ = _log_in("vera", "pw-vera")
    changed = client.post(
        "/password/", {"old_password": "pw-vera", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert changed.status_code == 302
    assert client.get("/clusters/").status_code == 200
    assert elsewhere.get("/clusters/")["Location"].startswith("/login/"), "the other session ended"
    record = AuditEvent.objects.get(action="user.password_changed")
    assert record.details == {"username": "vera", "required": False, "via": "password page"}
    assert NEW_PASSWORD not in _records_text() and "pw-vera" not in _records_text()


def test_a_password_from_reset_password_must_be_changed_too(root):
    """``manage.py reset_password`` prints the new password on a terminal: like a one-time password
    from the Teams page, it leads to the change form at its first login."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("reset_password", "root", stdout=out)
    printed = out.getvalue().split("password: ")[1].split()[0]
    client, landed = _log_in("root", printed)
    assert landed.redirect_chain[-1][0] == "/password/" and REQUIRED in landed.content.decode()
    assert client.get("/clusters/")["Location"] == "/password/"

"""A newcomer's first hour: the first admin is guided to create a team before a cluster, a second
start says how to get back in, and the password reset is audited."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_fresh_install_guides_the_first_admin_to_a_team_in_one_click(client, make_user):
    root = make_user("root", team=None, superuser=True)
    client.force_login(root)
    listing = client.get("/clusters/").content.decode()
    assert 'id="team-guide"' in listing and "there is no team yet" in listing
    assert 'id="create-team-form"' in listing and 'id="new-cluster"' not in listing
    form_page = client.get("/clusters/new/")
    assert form_page.status_code == 200
    text = form_page.content.decode()
    assert 'id="team-guide"' in text and 'id="cluster-form"' not in text, "no form with an empty Team field"

    response = client.post("/teams/new/", {"name": "platform", "next": "/clusters/new/"})
    assert response.status_code == 302 and response["Location"] == "/clusters/new/"
    assert AuditEvent.objects.filter(action="team.created").count() == 1
    text = client.get("/clusters/new/").content.decode()
    team = Group.objects.get(name="platform")
    assert 'id="team-guide"' not in text
    assert f'<option value="{team.pk}" selected>platform</option>' in text, "the only team is preselected"
    assert 'id="new-cluster"' in client.get("/clusters/").content.decode()


def test_a_member_without_an_operating_role_is_told_whom_to_ask(client, make_user):
    viewer = make_user("vera", role="viewer")
    client.force_login(viewer)
    text = client.get("/clusters/").content.decode()
    # Already in a team (issue 18 item 9): told to ask that team's admin for a role, not to be added.
    assert "Ask an admin of the team to change your role" in text and 'id="create-team-form"' not in text
    assert "Ask an administrator to add" not in text
    assert 'id="adopt-cluster"' not in text, "adopting needs the admin role somewhere"
    assert client.get("/clusters/new/").status_code == 403


def test_a_second_start_says_how_to_get_in():
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    assert "password:" in out.getvalue()
    again = io.StringIO()
    call_command("ensure_admin", stdout=again)
    assert "no password is printed" in again.getvalue()
    assert "manage.py reset_password" in again.getvalue() and "changepassword" in again.getvalue()


def test_reset_password_prints_a_new_one_once_and_audits_without_it(client):
    call_command("ensure_admin", stdout=io.StringIO())
    out = io.StringIO()
    call_command("reset_password", stdout=out)
    password = out.getvalue().split("password: ")[1].split()[0]
    assert client.post("/login/", {"username": "admin", "password": password}).status_code == 302
    [event] = AuditEvent.objects.filter(action="user.password_reset")
    assert event.details == {"username": "admin", "via": "command"}
    assert password not in str(event.details) + str(event.changes)
    assert event.source == "command:reset_password"
    with pytest.raises(CommandError, match="there is no user 'nobody'"):
        call_command("reset_password", "nobody", stdout=io.StringIO())


def test_reset_password_lifts_a_lockout(client, settings):
    from axes.models import AccessAttempt

    call_command("ensure_admin", stdout=io.StringIO())
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "admin", "password": "wrong"})
    assert AccessAttempt.objects.filter(username="admin").exists()
    out = io.StringIO()
    call_command("reset_password", "admin", stdout=out)
    password = out.getvalue().split("password: ")[1].split()[0]
    assert not AccessAttempt.objects.filter(username="admin").exists()
    response = client.post("/login/", {"username": "admin", "password": password})
    assert response.status_code == 302
    assert User.objects.get(username="admin").check_password(password)

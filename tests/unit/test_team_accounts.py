"""Issue 18 item 9: a team's creator is its admin; superusers create accounts on the Teams page
(one-time password shown once, audited without it); each person is told what fits their state."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from core.models import TeamMembership
from tests.conftest import team_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(make_user):
    return make_user("root", team=None, superuser=True)


def test_the_creator_of_a_team_becomes_its_admin_and_that_is_audited(client, root):
    client.force_login(root)
    response = client.post("/teams/new/", {"name": "payments"}, follow=True)
    membership = TeamMembership.objects.get(team__name="payments")
    assert (membership.user, membership.role) == (root, "admin")
    added = AuditEvent.objects.get(action="team.member_added", details__team="payments")
    assert added.details == {"team": "payments", "user": "root", "role": "admin"} and added.actor_name == "root"
    assert 'data-user="root"' in response.content.decode()


def test_a_superuser_creates_an_account_whose_password_is_shown_once_and_never_recorded(client, root, make_user):
    team = team_of(make_user("alice", role="admin"))
    client.force_login(root)
    assert 'id="new-user"' in client.get("/teams/").content.decode()
    response = client.post("/teams/users/new/", {"username": "newcomer", "team": team.pk, "role": "operator"})
    assert response.status_code == 302 and response["Location"] == "/teams/users/new/"
    shown = client.get("/teams/users/new/")
    assert shown["Cache-Control"] == "no-store"
    password = shown.context["password"]
    assert len(password) >= 16 and password in shown.content.decode()
    account = get_user_model().objects.get(username="newcomer")
    assert account.check_password(password) and not account.is_superuser
    assert TeamMembership.objects.get(user=account).role == "operator"
    assert client.get("/teams/users/new/").status_code == 302, "shown once: a reload goes back to Teams"
    created = AuditEvent.objects.get(action="user.created")
    assert created.actor_name == "root" and created.details["username"] == "newcomer"
    assert AuditEvent.objects.filter(action="team.member_added", details__user="newcomer").count() == 1
    everything = json.dumps(list(AuditEvent.objects.values("details", "changes", "object_repr")))
    assert password not in everything


def test_only_a_superuser_creates_accounts_and_a_duplicate_is_refused_in_words(client, root, make_user):
    admin = make_user("alice", role="admin")
    client.force_login(admin)
    assert client.post("/teams/users/new/", {"username": "sneaky", "role": "viewer"}).status_code == 403
    assert 'id="new-user"' not in client.get("/teams/").content.decode()
    client.force_login(root)
    again = client.post("/teams/users/new/", {"username": "ALICE", "role": "viewer"})
    assert again.status_code == 400 and "a user named “ALICE” already exists" in again.content.decode()
    assert AuditEvent.objects.filter(action="user.created", outcome="denied").count() == 1
    assert not get_user_model().objects.filter(username="sneaky").exists()


def test_a_viewer_is_told_to_ask_for_a_role_not_to_be_added_to_a_team(client, make_user):
    viewer = make_user("vera", role="viewer")
    client.force_login(viewer)
    page = client.get("/clusters/").content.decode()
    assert 'id="viewer-guide"' in page and "viewer in platform" in page
    assert "Ask an administrator to add" not in page
    assert "You are in no team yet" not in client.get("/teams/").content.decode()


def test_someone_in_no_team_is_told_to_ask_to_be_added(client, make_user):
    client.force_login(make_user("nobody", team=None))
    page = client.get("/clusters/").content.decode()
    assert 'id="no-team-guide"' in page and "Ask an administrator to add" in page
    assert "You are in no team yet; ask an administrator to add you." in client.get("/teams/").content.decode()


def test_a_superuser_without_teams_is_told_to_create_one_not_to_ask(client, root):
    client.force_login(root)
    page = client.get("/teams/").content.decode()
    assert "There is no team yet; create the first one below." in page and "ask an administrator" not in page


@pytest.mark.parametrize(
    ("who", "said", "link"),
    [
        ("root", "create the account under “New user” on the Teams page first", True),
        ("alice", "ask a superuser to create the account", False),
    ],
)
def test_adding_an_unknown_user_says_what_this_person_can_do(client, root, make_user, who, said, link):
    admin = make_user("alice", role="admin")
    team = team_of(admin)
    client.force_login(root if who == "root" else admin)
    response = client.post(f"/teams/{team.pk}/members/", {"username": "nobody", "role": "viewer"})
    text = response.content.decode()
    assert response.status_code == 400 and said in text
    assert ('href="/teams/#new-user"' in text) is link
    assert "in the admin" not in text

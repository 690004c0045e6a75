"""Teams and roles: superusers create teams, a team's admins manage its members, every change
is audited, and a removed member loses access at once."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from core.models import TeamMembership
from core.permissions import VIEW, can
from tests.conftest import team_of
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def team_admin(make_user):
    return make_user("alice", role="admin")


def test_superuser_creates_a_team_and_others_cannot(client, make_user, team_admin):
    client.force_login(team_admin)
    assert client.post("/teams/new/", {"name": "sneaky"}).status_code == 403
    client.force_login(make_user("root", team=None, superuser=True))
    response = client.post("/teams/new/", {"name": "payments"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="team.created", details__team="payments").count() == 1
    again = client.post("/teams/new/", {"name": "Payments"})
    assert again.status_code == 400 and "already exists" in again.content.decode()


def test_team_admin_adds_changes_and_removes_members_each_audited_once(client, make_user, team_admin):
    bob = make_user("bob", team=None)
    team = team_of(team_admin)
    client.force_login(team_admin)
    assert client.post(f"/teams/{team.pk}/members/", {"username": "bob", "role": "operator"}).status_code == 302
    membership = TeamMembership.objects.get(user=bob)
    assert membership.role == "operator"
    client.post(f"/teams/{team.pk}/members/{membership.pk}/role/", {"role": "viewer"})
    assert TeamMembership.objects.get(pk=membership.pk).role == "viewer"
    client.post(f"/teams/{team.pk}/members/{membership.pk}/remove/")
    assert not TeamMembership.objects.filter(pk=membership.pk).exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="team.").order_by("seq").values_list("action", flat=True)
    )
    assert actions == ["team.member_added", "team.role_changed", "team.member_removed"]
    changed = AuditEvent.objects.get(action="team.role_changed")
    assert changed.changes == {"before": {"role": "operator"}, "after": {"role": "viewer"}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"username": "nobody", "role": "viewer"}, "there is no user"),
        ({"username": "bob", "role": "overlord"}, "valid choice"),
    ],
)
def test_unknown_user_or_role_is_refused_with_a_reason(client, make_user, team_admin, data, message):
    make_user("bob", team=None)
    client.force_login(team_admin)
    response = client.post(f"/teams/{team_of(team_admin).pk}/members/", data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not AuditEvent.objects.filter(action="team.member_added").exists()


def test_non_admins_cannot_manage_and_outsiders_do_not_see_the_team(client, make_user, team_admin):
    operator = make_user("olga", role="operator")
    outsider = make_user("eve", team="elsewhere", role="admin")
    team = team_of(team_admin)
    client.force_login(operator)
    assert client.get(f"/teams/{team.pk}/").status_code == 200
    assert client.post(f"/teams/{team.pk}/members/", {"username": "eve", "role": "admin"}).status_code == 403
    client.force_login(outsider)
    assert client.get(f"/teams/{team.pk}/").status_code == 404


def test_the_last_admin_cannot_leave_the_team_unmanaged(client, team_admin):
    membership = team_admin.team_memberships.get()
    client.force_login(team_admin)
    response = client.post(f"/teams/{membership.team_id}/members/{membership.pk}/remove/", follow=True)
    assert "last admin" in response.content.decode()
    assert TeamMembership.objects.filter(pk=membership.pk).exists()


def test_a_removed_member_loses_access_at_once(client, make_user, team_admin):
    viewer = make_user("vic", role="viewer")
    cluster = make_cluster("c1", team=team_of(team_admin))
    client.force_login(viewer)
    assert client.get("/clusters/c1/").status_code == 200
    membership = viewer.team_memberships.get()
    admin_client = client.__class__()
    admin_client.force_login(team_admin)
    admin_client.post(f"/teams/{membership.team_id}/members/{membership.pk}/remove/")
    assert client.get("/clusters/c1/").status_code == 404
    assert not can(viewer, VIEW, cluster)
    assert client.get("/audit/?cluster=c1").context["page"].records == []


def test_django_permissions_answer_from_team_roles(make_user, team_admin):
    viewer = make_user("vic", role="viewer")
    cluster = make_cluster("c1", team=team_of(team_admin))
    other = make_cluster("c2", team=team_of(make_user("x", team="other")))
    assert viewer.has_perm("clusters.view_cluster", cluster)
    assert not viewer.has_perm("clusters.view_cluster", other)
    assert not viewer.has_perm("tokens.reveal_bootstraptoken")
    assert team_admin.has_perm("tokens.reveal_bootstraptoken")
    assert not team_admin.has_perm("clusters.change_cluster", cluster), "roles never grant generic edits"

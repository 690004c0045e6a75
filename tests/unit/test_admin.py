"""The admin follows the UI's rules: team-scoped for staff, read-only for objects with a
lifecycle (so nothing invalid can be saved), no secrets, and audited where it can change things."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import record
from clusters.models import Cluster
from nodes.models import Node
from tests.conftest import team_of
from tests.factories import CLUSTER_FORM, make_cluster
from tokens.models import BootstrapToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_user):
    mine = make_user("staffer", role="admin")
    User.objects.filter(pk=mine.pk).update(is_staff=True)
    theirs = make_user("other", team="elsewhere", role="admin")
    own = make_cluster("own", team=team_of(mine))
    foreign = make_cluster("foreign", team=team_of(theirs))
    node = Node.objects.create(cluster=foreign, name="n1", address="10.0.0.9", ssh_password="p4ssw0rd-plain")
    token = BootstrapToken.objects.create(cluster=own, token_id="abcdef", secret="0123456789abcdef")
    record("cluster.created", obj=own)
    record("cluster.created", obj=foreign)
    return {"user": User.objects.get(pk=mine.pk), "own": own, "foreign": foreign, "node": node, "token": token}


def test_staff_see_only_their_teams_objects(client, world):
    client.force_login(world["user"])
    listing = client.get(reverse("admin:clusters_cluster_changelist")).content.decode()
    assert "own" in listing and "foreign" not in listing
    response = client.get(reverse("admin:clusters_cluster_change", args=[world["foreign"].pk]))
    assert response.status_code == 302, "another team's cluster is 'not found' for them"
    assert client.get(reverse("admin:nodes_node_change", args=[world["node"].pk])).status_code == 302
    events = client.get(reverse("admin:audit_auditevent_changelist")).content.decode()
    assert "foreign" not in events and "own" in events


@pytest.mark.parametrize(
    ("url_name", "data"),
    [
        ("admin:clusters_cluster_add", CLUSTER_FORM | {"name": "bad", "kubernetes_version": "banana"}),
        ("admin:clusters_cluster_add", CLUSTER_FORM | {"name": "bad", "control_plane_endpoint": "not a host!!"}),
        ("admin:clusters_cluster_add", CLUSTER_FORM | {"name": "bad", "pod_subnet": "10.96.0.0/16"}),
        ("admin:nodes_node_add", {"name": "n2", "address": "", "ssh_port": "22", "ssh_user": "root"}),
        ("admin:tokens_bootstraptoken_add", {"token_id": "", "secret": "", "description": "x"}),
    ],
)
def test_the_admin_cannot_create_invalid_objects(client, make_user, world, url_name, data):
    root = make_user("root", team=None, superuser=True)
    client.force_login(root)
    before = (Cluster.objects.count(), Node.objects.count(), BootstrapToken.objects.count())
    response = client.post(reverse(url_name), data)
    assert response.status_code == 403
    assert (Cluster.objects.count(), Node.objects.count(), BootstrapToken.objects.count()) == before


def test_a_cluster_cannot_be_moved_to_another_team_through_the_admin(client, world, make_user):
    root = make_user("root", team=None, superuser=True)
    for user in (world["user"], root):
        client.force_login(user)
        data = CLUSTER_FORM | {"name": "foreign", "team": team_of(world["user"]).pk}
        response = client.post(reverse("admin:clusters_cluster_change", args=[world["foreign"].pk]), data)
        assert response.status_code in (302, 403)
        world["foreign"].refresh_from_db()
        assert world["foreign"].team.name == "elsewhere"
    # And no page offers a delete either.
    assert client.post(reverse("admin:clusters_cluster_delete", args=[world["foreign"].pk])).status_code == 403


def test_secrets_never_appear_in_the_admin(client, world, make_user):
    client.force_login(make_user("root", team=None, superuser=True))
    pages = [
        client.get(reverse("admin:nodes_node_change", args=[world["node"].pk])),
        client.get(reverse("admin:tokens_bootstraptoken_change", args=[world["token"].pk])),
        client.get(reverse("admin:tokens_bootstraptoken_changelist")),
    ]
    for page in pages:
        text = page.content.decode()
        assert page.status_code == 200
        assert "p4ssw0rd-plain" not in text and "0123456789abcdef" not in text and "fernet:" not in text
    assert "set (hidden)" in pages[0].content.decode()


def test_admin_changes_that_remain_possible_are_audited_once(client, make_user):
    root = make_user("root", team=None, superuser=True)
    target = make_user("target")
    client.force_login(root)
    url = reverse("admin:auth_user_change", args=[target.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and not isinstance(value, list)}
    data.update(
        {
            "username": "target",
            "is_active": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "groups": [g.pk for g in target.groups.all()],
        }
    )
    data.pop("last_login", None)
    data.pop("password", None)
    before = AuditEvent.objects.count()
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    records = AuditEvent.objects.filter(action="admin.user.changed")
    assert AuditEvent.objects.count() == before + 1 and records.count() == 1
    event = records.get()
    assert event.actor_name == "root" and event.changes["before"]["is_active"] is True
    assert event.changes["after"]["is_active"] is False
    assert "pbkdf2" not in str(event.changes)
    client.post(
        reverse("admin:auth_user_password_change", args=[target.pk]),
        {"password1": "n3w-Passw0rd-long", "password2": "n3w-Passw0rd-long"},
    )
    changed = AuditEvent.objects.filter(action="admin.user.changed").order_by("-seq").first()
    assert (
        changed.seq > event.seq and "pbkdf2" not in str(changed.changes) and "n3w-Passw0rd" not in str(changed.details)
    )


def test_lifting_a_login_lockout_in_the_admin_is_audited(client, make_user):
    from axes.models import AccessAttempt

    root = make_user("root", team=None, superuser=True)
    attempt = AccessAttempt.objects.create(
        username="locked",
        ip_address="10.9.8.7",
        failures_since_start=9,
        user_agent="x",
        get_data="",
        post_data="",
        http_accept="",
        path_info="/",
    )
    client.force_login(root)
    response = client.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(pk=attempt.pk).exists()
    event = AuditEvent.objects.get(action="admin.accessattempt.deleted")
    assert event.actor_name == "root" and event.changes["before"]["username"] == "locked"

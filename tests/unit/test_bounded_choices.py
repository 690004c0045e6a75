"""Several objects chosen by key (the join form's machines, the admin's permissions and groups):
a number beyond 64 bits is refused as an invalid choice, never a server error (SQLite raises
OverflowError on it in the lookup's IN list)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from nodes.forms import BulkCheckForm
from nodes.models import Node
from tests.conftest import team_of
from tests.factories import make_cluster
from workflows.cluster_forms import JoinForm

pytestmark = pytest.mark.django_db

HUGE = str(2**64)


def test_the_join_form_refuses_a_machine_key_beyond_64_bits(operator):
    cluster = make_cluster("c1", team=team_of(operator))
    node = Node.objects.create(cluster=cluster, name="w1", address="10.0.0.21")
    for keys in ([HUGE], [str(node.pk), HUGE], [str(-(2**63) - 1)]):
        form = JoinForm({"nodes": keys}, cluster=cluster)
        assert not form.is_valid()
        assert form.errors["nodes"] == [f"“{keys[-1]}” is not a valid value."]
    assert JoinForm({"nodes": [str(node.pk)]}, cluster=cluster).is_valid()


def test_the_check_together_form_refuses_a_machine_key_beyond_64_bits(operator):
    cluster = make_cluster("c1", team=team_of(operator))
    node = Node.objects.create(cluster=cluster, name="w1", address="10.0.0.21")
    for keys in ([HUGE], [str(node.pk), HUGE]):
        form = BulkCheckForm({"nodes": keys}, cluster=cluster)
        assert not form.is_valid()
        assert form.errors["nodes"] == [f"“{keys[-1]}” is not a valid value."]
    assert BulkCheckForm({"nodes": [str(node.pk)]}, cluster=cluster).is_valid()


def test_the_admin_refuses_a_related_key_beyond_64_bits(client, make_user):
    root = make_user("root", team=None, superuser=True)
    client.force_login(root)
    group = client.post(reverse("admin:auth_group_add"), {"name": "g1", "permissions": [HUGE]})
    user = client.post(
        reverse("admin:auth_user_change", args=[root.pk]),
        {"username": "root", "is_active": "on", "is_superuser": "on", "groups": [HUGE]},
    )
    for response in (group, user):
        assert response.status_code == 200
        assert f"“{HUGE}” is not a valid value." in response.content.decode()
    assert not Group.objects.filter(name="g1").exists()

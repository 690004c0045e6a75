"""Team roles decide what a user may do with a cluster's objects, in one place."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from clusters.models import Cluster
from core.permissions import ADMIN, OPERATE, VIEW, can, get_object_for, restrict, teams_for
from tests.conftest import team_of
from tests.factories import make_cluster


@pytest.fixture
def cluster(make_user):
    owner = make_user("owner", role="admin")
    return make_cluster("c1", team=team_of(owner))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "allowed"),
    [("viewer", {VIEW}), ("operator", {VIEW, OPERATE}), ("admin", {VIEW, OPERATE, ADMIN})],
)
def test_roles_grant_their_actions_only(make_user, cluster, role, allowed):
    user = make_user(f"u-{role}", role=role)
    for action in (VIEW, OPERATE, ADMIN):
        assert can(user, action, cluster) is (action in allowed), (role, action)
        assert (cluster in restrict(Cluster.objects.all(), user, action)) is (action in allowed)


@pytest.mark.django_db
def test_other_team_sees_nothing_and_gets_404(make_user, cluster):
    outsider = make_user("outsider", team="elsewhere", role="admin")
    assert not restrict(Cluster.objects.all(), outsider, VIEW).exists()
    assert not teams_for(outsider, VIEW).filter(pk=cluster.team_id).exists()
    with pytest.raises(Http404):
        get_object_for(outsider, VIEW, Cluster.objects.all(), pk=cluster.pk)


@pytest.mark.django_db
def test_viewer_gets_403_for_an_action_beyond_the_role(make_user, cluster):
    viewer = make_user("vic", role="viewer")
    assert get_object_for(viewer, VIEW, Cluster.objects.all(), pk=cluster.pk) == cluster
    with pytest.raises(PermissionDenied):
        get_object_for(viewer, OPERATE, Cluster.objects.all(), pk=cluster.pk)


@pytest.mark.django_db
def test_superuser_and_anonymous(make_user, cluster):
    from django.contrib.auth.models import AnonymousUser

    root = make_user("root", team=None, superuser=True)
    assert can(root, ADMIN, cluster)
    assert not restrict(Cluster.objects.all(), AnonymousUser(), VIEW).exists()


@pytest.mark.django_db
def test_removed_member_loses_access_at_once(make_user, cluster):
    user = make_user("leaver", role="operator")
    assert can(user, OPERATE, cluster)
    user.team_memberships.all().delete()
    assert not can(user, VIEW, cluster)

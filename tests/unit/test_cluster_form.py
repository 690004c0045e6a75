"""Creating a cluster: every bad input is a specific error on its field, and nothing is saved."""

import pytest

from audit.models import AuditEvent
from clusters.forms import ClusterForm
from clusters.models import Cluster
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION, SUPPORTED_VERSIONS
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import CLUSTER_FORM

VALID = dict(CLUSTER_FORM, name="prod-eu1")


def form_for(user, **changes):
    data = dict(VALID, **changes)
    data.setdefault("team", team_of(user).pk if user.team_memberships.exists() else "")
    return ClusterForm(data, user=user)


@pytest.mark.django_db
def test_valid_form(operator):
    form = form_for(operator)
    assert form.is_valid(), form.errors


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("name", "Bad_Name", "DNS-1123 name"),
        ("name", "-leading-dash", "DNS-1123 name"),
        ("pod_subnet", "10.244.0.0/33", "couldn't parse subnet"),
        ("pod_subnet", "not-a-cidr", "expected a CIDR"),
        ("pod_subnet", "10.96.0.0/16", "does not overlap serviceSubnet 10.96.0.0/12"),
        ("service_subnet", "10.96.0.0/30", "too small"),
        ("service_subnet", "10.0.0.0/8", "too large"),
        ("kubernetes_version", "v1.20.0", ", ".join(SUPPORTED_VERSIONS)),
        ("kubernetes_version", "banana", "expected a version like"),
        ("control_plane_endpoint", "https://10.0.0.10:6443", "host or host:port"),
        ("control_plane_endpoint", "api.example.com:99999", "between 1 and 65535"),
        ("dns_domain", "Not_Valid", "DNS-1123 subdomain"),
        ("encryption_algorithm", "DSA-1024", "not one of the available choices"),
    ],
)
def test_bad_input_is_a_specific_field_error(operator, field, value, fragment):
    form = form_for(operator, **{field: value})
    assert not form.is_valid()
    messages = " ".join(form.errors.get(field, []))
    assert fragment in messages, form.errors


@pytest.mark.django_db
def test_duplicate_name_rejected(operator, client):
    Cluster.objects.create(name="prod-eu1", kubernetes_version=DEFAULT_KUBERNETES_VERSION, control_plane_endpoint="x:6443")
    form = form_for(operator)
    assert not form.is_valid()
    assert "already exists" in " ".join(form.errors["name"])


@pytest.mark.django_db
def test_invalid_post_saves_nothing(operator, client):
    client.force_login(operator)
    data = dict(VALID, pod_subnet="10.96.0.0/16", team=team_of(operator).pk)
    response = client.post("/clusters/new/", data)
    assert response.status_code == 400
    assert b"does not overlap serviceSubnet" in response.content
    assert Cluster.objects.count() == 0
    assert Operation.objects.count() == 0
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_team_member_must_pick_one_of_their_teams(operator, make_user):
    from django.contrib.auth.models import Group

    other = Group.objects.create(name="someone-else")
    form = form_for(operator, team=other.pk)
    assert not form.is_valid()
    assert "team" in form.errors


@pytest.mark.django_db
def test_create_requires_permission(make_user, client):
    client.force_login(make_user("viewer"))
    response = client.post("/clusters/new/", dict(VALID))
    assert response.status_code == 403
    assert Cluster.objects.count() == 0

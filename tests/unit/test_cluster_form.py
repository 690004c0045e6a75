"""Creating a cluster: every bad input is a specific error on its field, and nothing is saved."""

import pytest

from audit.models import AuditEvent
from clusters.forms import ClusterForm
from clusters.models import Cluster
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION
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
        ("name", "Bad_Name", "expected a DNS label: at most 63 lower-case letters"),
        ("name", "-leading-dash", "expected a DNS label: at most 63 lower-case letters"),
        ("name", "x" * 64, "expected a DNS label: at most 63 lower-case letters"),
        ("pod_subnet", "10.244.0.0/33", "couldn't parse subnet"),
        ("pod_subnet", "not-a-cidr", "expected a CIDR"),
        ("pod_subnet", "10.96.0.0/16", "does not overlap serviceSubnet 10.96.0.0/12"),
        ("service_subnet", "10.96.0.0/30", "too small"),
        ("service_subnet", "10.0.0.0/8", "too large"),
        ("kubernetes_version", "v1.20.0", "Kubernetes 1.20 is not supported by this Kubeboard"),
        ("kubernetes_version", "banana", "expected one of v1.37.2, v1.36.3, v1.35.4"),
        ("kubernetes_version", "1.34", "Kubernetes 1.34 is not supported by this Kubeboard"),
        (
            "control_plane_endpoint",
            "https://10.0.0.10:6443",
            "a scheme is not allowed; use host or host:port, e.g. 10.0.0.10:6443",
        ),
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
    Cluster.objects.create(
        name="prod-eu1", kubernetes_version=DEFAULT_KUBERNETES_VERSION, control_plane_endpoint="x:6443"
    )
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
    assert not AuditEvent.objects.exclude(action="auth.login").exists()


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


@pytest.mark.django_db
@pytest.mark.parametrize(("typed", "stored"), [("1.37", "v1.37.2"), ("v1.37", "v1.37.2"), ("1.36.1", "v1.36.1")])
def test_a_typed_minor_is_its_newest_patch(operator, typed, stored):
    form = form_for(operator, kubernetes_version=typed)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["kubernetes_version"] == stored


@pytest.mark.django_db
def test_version_is_a_choice_of_supported_versions_newest_preselected(operator):
    from kubeadm.versions import offered_versions

    html = str(ClusterForm(user=operator)["kubernetes_version"])
    assert html.startswith("<select")
    assert [v for v in offered_versions()] == [v for v in offered_versions() if f'value="{v}"' in html]
    assert f'value="{offered_versions()[0]}" selected' in html
    assert "1.34" not in html


@pytest.mark.django_db
def test_the_name_has_one_message_everywhere(operator):
    from django.core.exceptions import ValidationError

    form = form_for(operator, name="Prod_EU")
    assert not form.is_valid()
    [message] = form.errors["name"]
    with pytest.raises(ValidationError) as model_error:
        Cluster(name="Prod_EU", **{k: v for k, v in VALID.items() if k != "name"}).full_clean(exclude=["team"])
    assert model_error.value.message_dict["name"] == [message]
    assert "253" not in message and "'.'" not in message


@pytest.mark.django_db
def test_every_mistake_is_reported_in_one_round_trip(operator):
    form = form_for(
        operator,
        name="Prod_EU",
        kubernetes_version="banana",
        control_plane_endpoint="http://x",
        pod_subnet="10.96.0.0/16",
    )
    assert not form.is_valid()
    assert set(form.errors) >= {"name", "kubernetes_version", "control_plane_endpoint", "pod_subnet"}
    assert all(len(messages) == 1 for messages in form.errors.values()), form.errors

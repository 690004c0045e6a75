"""The control-plane endpoint choice on the new-cluster form (issue 21): a virtual IP fills in
controlPlaneEndpoint as VIP:port, each mistake is named on its own field, and the external
load balancer stays the default (today's behaviour)."""

import pytest

from clusters.forms import ClusterForm
from clusters.models import Cluster
from endpoints import layout
from tests.conftest import team_of
from tests.factories import CLUSTER_FORM

VIP = {
    "endpoint_mode": "vip",
    "endpoint_vip": "10.213.49.100",
    "endpoint_interface": "eth0",
    "endpoint_port": "8443",
    "control_plane_endpoint": "",
}


def form_for(user, **changes):
    data = dict(CLUSTER_FORM, name="ha-prod", **changes)
    data.setdefault("team", team_of(user).pk)
    return ClusterForm(data, user=user)


@pytest.mark.django_db
def test_the_default_is_an_external_endpoint_as_before(operator):
    form = form_for(operator)
    assert form.is_valid(), form.errors
    cluster = form.save()
    assert cluster.endpoint_mode == layout.EXTERNAL
    assert cluster.control_plane_endpoint == CLUSTER_FORM["control_plane_endpoint"]
    assert not cluster.endpoint_spec.installs_anything


@pytest.mark.django_db
def test_a_virtual_ip_becomes_the_control_plane_endpoint(operator):
    form = form_for(operator, **VIP, endpoint_unicast="on")
    assert form.is_valid(), form.errors
    cluster = form.save()
    cluster.refresh_from_db()
    assert cluster.control_plane_endpoint == "10.213.49.100:8443"
    spec = cluster.endpoint_spec
    assert (spec.mode, spec.vip, spec.interface, spec.port, spec.unicast) == (
        "vip",
        "10.213.49.100",
        "eth0",
        8443,
        True,
    )
    assert spec.router_id == layout.default_router_id("ha-prod")


@pytest.mark.django_db
def test_typing_the_same_endpoint_is_fine_another_is_refused(operator):
    assert form_for(operator, **{**VIP, "control_plane_endpoint": "10.213.49.100:8443"}).is_valid()
    form = form_for(operator, **{**VIP, "control_plane_endpoint": "10.213.49.11:6443"})
    assert not form.is_valid()
    assert "with a virtual IP the endpoint is 10.213.49.100:8443" in form.errors["control_plane_endpoint"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"endpoint_vip": ""}, "endpoint_vip", "the virtual IP is required"),
        ({"endpoint_vip": "10.213.49"}, "endpoint_vip", "is not an IP address"),
        ({"endpoint_interface": ""}, "endpoint_interface", "interface keepalived adds the virtual IP to"),
        ({"endpoint_interface": "eth0:1"}, "endpoint_interface", "not a Linux interface name"),
        ({"endpoint_port": "6443"}, "endpoint_port", "taken by kube-apiserver"),
        ({"endpoint_port": "31000"}, "endpoint_port", "NodePort range"),
        ({"endpoint_mode": "dns"}, "endpoint_mode", "not one of the available choices"),
    ],
)
def test_each_vip_mistake_is_on_its_field(operator, changes, field, fragment):
    form = form_for(operator, **{**VIP, **changes})
    assert not form.is_valid()
    assert fragment in " ".join(form.errors.get(field, [])), form.errors
    assert not Cluster.objects.filter(name="ha-prod").exists()


@pytest.mark.django_db
def test_local_proxy_keeps_the_typed_endpoint_and_adds_the_loopback_to_the_certificate(operator):
    form = form_for(operator, endpoint_mode="local-proxy", endpoint_port="7443")
    assert form.is_valid(), form.errors
    cluster = form.save()
    assert cluster.control_plane_endpoint == CLUSTER_FORM["control_plane_endpoint"]
    assert (cluster.endpoint_mode, cluster.endpoint_port, cluster.endpoint_vip) == ("local-proxy", 7443, "")
    from clusters.kubeadm_config import configuration_for

    sans = configuration_for(cluster).api_server.cert_sans
    assert "127.0.0.1" in sans and "localhost" in sans


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["external", "local-proxy"])
def test_an_endpoint_is_required_unless_a_vip_fills_it(operator, mode):
    form = form_for(operator, endpoint_mode=mode, control_plane_endpoint="")
    assert not form.is_valid()
    assert form.errors["control_plane_endpoint"][0].startswith("required: ")


@pytest.mark.django_db
def test_the_choice_sits_beside_the_endpoint_on_the_form(operator):
    names = list(ClusterForm(user=operator).fields)
    at = names.index("control_plane_endpoint")
    assert names[at - 5 : at] == [
        "endpoint_mode",
        "endpoint_vip",
        "endpoint_interface",
        "endpoint_port",
        "endpoint_unicast",
    ]


@pytest.mark.django_db
def test_the_cluster_page_says_which_endpoint(operator, client):
    form = form_for(operator, **VIP)
    assert form.is_valid(), form.errors
    cluster = form.save()
    client.force_login(operator)
    page = client.get(cluster.get_absolute_url())
    assert page.status_code == 200
    assert "Virtual IP 10.213.49.100 on eth0 (haproxy :8443, VRRP router id" in page.content.decode()


@pytest.mark.django_db
def test_the_endpoint_status_part_asks_the_machines_and_never_fails(operator, client, monkeypatch):
    """The page loads the part after it is shown; a machine that cannot be reached is shown with
    its error (here the network guard refuses the documentation address), not a 500."""
    from nodes.models import Node

    form = form_for(operator, **VIP)
    assert form.is_valid(), form.errors
    cluster = form.save()
    Node.objects.create(
        cluster=cluster, name="cp1", address="192.0.2.11", role=Node.Role.CONTROL_PLANE, status=Node.Status.JOINED
    )
    client.force_login(operator)
    page = client.get(cluster.get_absolute_url()).content.decode()
    assert 'hx-get="/clusters/ha-prod/endpoint/"' in page
    part = client.get("/clusters/ha-prod/endpoint/")
    assert part.status_code == 200
    text = part.content.decode()
    assert "no machine said it holds it" in text
    assert 'data-machine="cp1"' in text and "refused by the network guard" in text


@pytest.mark.django_db
def test_a_vip_inside_the_service_subnet_is_refused_on_the_vip_field(operator):
    form = form_for(operator, **{**VIP, "endpoint_vip": "10.96.0.10"})
    assert not form.is_valid()
    assert "is inside the service subnet 10.96.0.0/12" in form.errors["endpoint_vip"][0]


@pytest.mark.django_db
def test_creating_a_vip_cluster_records_the_choice_in_the_audit_trail(operator, client):
    from audit.models import AuditEvent

    client.force_login(operator)
    data = dict(CLUSTER_FORM, name="ha-audited", team=team_of(operator).pk, **VIP)
    response = client.post("/clusters/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    record = AuditEvent.objects.get(action="cluster.created", cluster_name="ha-audited")
    assert record.details["endpoint"].startswith("Virtual IP 10.213.49.100 on eth0 (haproxy :8443")
    assert record.details["control_plane_endpoint"] == "10.213.49.100:8443"

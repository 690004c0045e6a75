"""Cordon, uncordon and drain from the cluster page's summary (workflows.scheduling): offered to
operators on joined machines that the API server lists, queued as operations with one audit
record, refused with the reason (and its own record) before anything is contacted."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from clusters.models import Cluster, ClusterInventory
from kubeadm import pki
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


@pytest.fixture
def world(make_user, ca):
    operator = make_user("olivia", role="operator")
    viewer = make_user("vera", role="viewer")
    cluster = make_cluster(
        "sched", team=team_of(operator), status=Cluster.Status.RUNNING, ca_pin_hash="sha256:" + "ab" * 32
    )
    store_authorities(cluster, {"ca": ca})
    joined = Node.objects.create(cluster=cluster, name="w1", address="10.0.0.31", status=Node.Status.JOINED)
    new = Node.objects.create(cluster=cluster, name="w2", address="10.0.0.32")
    ClusterInventory.objects.create(
        cluster=cluster,
        api_nodes=[
            {"name": "w1", "ready": True, "roles": [], "kubelet_version": "v1.37.2", "unschedulable": False},
        ],
    )
    return {"operator": operator, "viewer": viewer, "cluster": cluster, "joined": joined, "new": new}


def scheduling_form(html: str, node: str) -> str | None:
    found = re.search(
        rf'<form method="post" action="[^"]+" class="node-scheduling" id="scheduling-{node}".*?</form>', html, re.S
    )
    return found.group(0) if found else None


def test_the_summary_offers_cordon_and_drain_to_operators_on_joined_nodes(client, world):
    client.force_login(world["operator"])
    html = client.get("/clusters/sched/").content.decode()
    form = scheduling_form(html, "w1")
    assert form and 'action="/clusters/sched/day2/nodes/w1/scheduling/"' in form
    assert re.findall(r'value="(\w+)"', form)[1:] == ["cordon", "drain"]  # after the CSRF token
    assert scheduling_form(html, "w2") is None, "a machine that has not joined has no Node to cordon"

    ClusterInventory.objects.filter(cluster=world["cluster"]).update(
        api_nodes=[{"name": "w1", "ready": True, "unschedulable": True}]
    )
    html = client.get("/clusters/sched/").content.decode()
    assert re.findall(r'value="(\w+)"', scheduling_form(html, "w1"))[1:] == ["uncordon", "drain"]
    assert "SchedulingDisabled" in html

    client.force_login(world["viewer"])
    assert scheduling_form(client.get("/clusters/sched/").content.decode(), "w1") is None


@pytest.mark.parametrize("action", ["cordon", "uncordon", "drain"])
def test_an_operator_queues_it_with_one_audit_record(client, world, action):
    client.force_login(world["operator"])
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    response = client.post("/clusters/sched/day2/nodes/w1/scheduling/", {"action": action})
    operation = Operation.objects.get(kind=action)
    assert response.status_code == 302 and response.url == operation.get_absolute_url()
    assert operation.params == {"node": "w1", "node_id": world["joined"].pk}
    phases = list(operation.phases.order_by("order").values_list("name", "group", "node_id"))
    assert phases == [(action, "w1", world["joined"].pk), ("read-nodes", "", None)]
    written = AuditEvent.objects.filter(seq__gt=before).values_list("action", "outcome", "object_id")
    assert list(written) == [("operation.queued", "success", str(operation.pk))]


def test_what_cannot_work_is_refused_before_anything_runs(client, world, make_user):
    client.force_login(world["operator"])
    response = client.post("/clusters/sched/day2/nodes/w2/scheduling/", {"action": "cordon"}, follow=True)
    assert "w2 is new: only a joined machine has a Node to cordon — join it first" in response.content.decode()
    refused = AuditEvent.objects.order_by("-seq").first()
    assert (refused.action, refused.outcome) == ("operation.queued", "denied")

    response = client.post("/clusters/sched/day2/nodes/w1/scheduling/", {"action": "delete"}, follow=True)
    assert "&#x27;delete&#x27; is not one of cordon, uncordon, drain" in response.content.decode()

    Cluster.objects.filter(pk=world["cluster"].pk).update(status=Cluster.Status.READY)
    response = client.post("/clusters/sched/day2/nodes/w1/scheduling/", {"action": "drain"}, follow=True)
    assert "cluster sched is not initialized — initialize the cluster first" in response.content.decode()
    assert not Operation.objects.exists()

    client.force_login(world["viewer"])
    assert client.post("/clusters/sched/day2/nodes/w1/scheduling/", {"action": "cordon"}).status_code == 403
    assert not Operation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_phase_fails_with_the_api_servers_error_when_it_does_not_answer(world):
    """Through the real runner: the kind's plan, its phase and the one place an API error becomes
    the phase's failure (nothing listens at the test cluster's endpoint)."""
    from operations.runner import run_operation
    from workflows.scheduling import start

    operation = start(world["joined"], "cordon", user=world["operator"])
    assert run_operation(operation.pk) == "failed"
    cordon = operation.phases.get(name="cordon")
    assert cordon.status == "failed" and "10.0.0.10" in cordon.error, cordon.error
    assert operation.phases.get(name="read-nodes").status == "pending"

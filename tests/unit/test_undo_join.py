"""The one-click undo of a failed join (workflows.undo_join) through the test client: who is offered
the button on the join's page and the machine's page, that a member (or a machine whose
membership nobody can tell) is refused with the reason and one audit record, the refusal that
names it, and the reset page's "Join … again". tests/e2e/test_engine_cluster.py presses it on a
real cluster: the reset empties /etc/kubernetes and the new join succeeds."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from clusters.models import Cluster
from kubeadm import pki
from nodes import readiness
from nodes.models import Node
from operations.models import Operation, PhaseRun
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities
from workflows import join, reset

pytestmark = pytest.mark.django_db

PINNED = {
    "ssh_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOr9w8x1xVdS0k4pQm0c6oW6i8vJjIY5nEoQv7sJ8l7Q",
    "ssh_host_key_fingerprint": "SHA256:abc",
}
FACTS_OK = {
    "binaries": {"kubeadm": {"path": "/usr/bin/kubeadm", "version": "v1.37.2", "skew": None}},
    "etc_kubernetes": {"exists": True, "files": [], "count": 0, "populated": False},
}
LABEL = "Undo this join attempt on w1"


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


@pytest.fixture
def cluster(operator, ca) -> Cluster:
    # Running, in Kubeboard's custody; its API server address is one no test may reach, so asking
    # it whether w1 registered ends in "did not answer" at once.
    made = make_cluster("web", team=team_of(operator), status=Cluster.Status.RUNNING, ca_pin_hash="sha256:" + "0" * 64)
    store_authorities(made, {"ca": ca})
    Node.objects.create(cluster=made, name="cp1", address="10.0.0.11", role=Node.Role.CONTROL_PLANE,
                        status=Node.Status.JOINED, facts=FACTS_OK, **PINNED)  # fmt: skip
    return made


@pytest.fixture
def failed_join(cluster, operator) -> Operation:
    """A worker join of w1 started the real way, then ended as a failed preflight ends it."""
    machine = Node.objects.create(cluster=cluster, name="w1", address="10.0.0.21", facts=FACTS_OK, **PINNED)
    operation = join.start_join(cluster, [machine], user=operator)
    operation.phases.filter(name="check-machine").update(status=PhaseRun.Status.SUCCEEDED)
    operation.phases.filter(name="preflight").update(status=PhaseRun.Status.FAILED)
    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.FAILED)
    operation.refresh_from_db()
    join.on_finished(operation)
    assert Node.objects.get(pk=machine.pk).status == Node.Status.FAILED
    return operation


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.wsgi_request._messages)


def undo(client: Client, node: str = "w1"):
    return client.post(f"/clusters/web/day2/undo-join/{node}/")


def resets() -> int:
    return Operation.objects.filter(kind=reset.KIND).count()


def test_operator_is_offered_the_undo_on_the_join_page_and_the_machine_page_a_viewer_is_not(
    failed_join, operator, make_user
):
    action = 'action="/clusters/web/day2/undo-join/w1/"'
    client = logged_in(operator)
    for url in (failed_join.get_absolute_url(), "/clusters/web/nodes/w1/"):
        html = page(client, url)
        assert LABEL in html and action in html, url
    # The machine that joined is offered nothing, and neither is a join that succeeded.
    assert "Undo this join attempt" not in page(client, "/clusters/web/nodes/cp1/")

    viewer = make_user("vera", team=team_of(operator).name, role="viewer")
    client = logged_in(viewer)
    for url in (failed_join.get_absolute_url(), "/clusters/web/nodes/w1/"):
        html = page(client, url)
        assert "Undo this join attempt" not in html and action not in html, url
    response = undo(client)
    assert response.status_code == 403
    assert resets() == 0


def test_a_member_is_refused_with_the_reason_and_one_record(failed_join, operator):
    # The join failed only in its closing read-back: w1 joined after all, a working member.
    Node.objects.filter(name="w1").update(status=Node.Status.JOINED)
    client = logged_in(operator)
    html = page(client, failed_join.get_absolute_url())
    assert 'data-unavailable="undo-join"' in html and "has joined cluster web: it is a member" in html
    assert 'action="/clusters/web/day2/undo-join/w1/"' not in html

    response = undo(client)
    assert response.status_code == 302 and response["Location"] == "/clusters/web/nodes/w1/"
    text = messages_of(response)
    assert "w1 has joined cluster web: it is a member, not a failed join" in text
    assert '"Reset a machine" under Day two' in text
    assert resets() == 0
    record = AuditEvent.objects.filter(action="operation.queued").latest("seq")
    assert record.outcome == "denied" and record.details["kind"] == reset.KIND
    assert "it is a member" in record.details["error"]
    # A joined control plane that never failed a join is refused the same way.
    assert "cp1 has joined cluster web" in messages_of(undo(client, "cp1"))


def test_unknown_membership_is_refused_before_any_reset(failed_join, operator):
    """The API server does not answer: nobody can tell whether w1 registered, so nothing starts."""
    response = undo(logged_in(operator))
    assert response.status_code == 302
    text = messages_of(response)
    assert "cannot tell whether w1 is a member: the cluster's API server did not answer" in text, text
    assert resets() == 0
    refused = AuditEvent.objects.filter(action="operation.queued", outcome="denied")
    assert refused.count() == 1 and refused.get().details["kind"] == reset.KIND


def test_nothing_to_undo_without_a_failed_join(cluster, operator):
    Node.objects.create(cluster=cluster, name="w1", address="10.0.0.21", facts=FACTS_OK, **PINNED)
    client = logged_in(operator)
    assert "Undo this join attempt" not in page(client, "/clusters/web/nodes/w1/")
    assert "w1 has no failed join to undo (new)" in messages_of(undo(client))
    assert resets() == 0


def test_the_not_empty_refusal_names_the_undo_and_links_to_it(failed_join):
    machine = Node.objects.get(name="w1")
    facts = dict(FACTS_OK, etc_kubernetes={"exists": True, "files": ["/etc/kubernetes/pki/ca.crt"], "count": 1,
                                           "populated": True})  # fmt: skip
    (refusal,) = readiness.refusals(facts, node=machine, kubernetes_version="v1.37.2")
    assert "/etc/kubernetes is not empty" in refusal.message
    assert '"Undo this join attempt on w1" on its page (/clusters/web/nodes/w1/#undo-join)' in refusal.hint
    # The operation page makes that address a link to the page with the button.
    PhaseRun.objects.filter(operation=failed_join, name="preflight").update(hint=refusal.hint)
    html = page(logged_in(failed_join.requested_by), failed_join.get_absolute_url())
    assert '<a href="/clusters/web/nodes/w1/#undo-join">' in html and 'id="undo-join"' in html


def test_the_reset_it_started_offers_the_join_again(failed_join, operator):
    machine = Node.objects.get(name="w1")
    # What start_undo_join does once the API server says w1 is not registered (the e2e test
    # presses the button on a real cluster).
    started = reset.start_reset(machine, user=operator, confirm="w1", undoes=failed_join)
    assert started.params["undoes_join"] == failed_join.pk
    client = logged_in(operator)
    assert "Join w1 again" not in page(client, started.get_absolute_url())  # not before it succeeded
    Operation.objects.filter(pk=started.pk).update(status=Operation.Status.SUCCEEDED)
    # What its forget phase leaves: marked new, then reachable after its machine check.
    Node.objects.filter(pk=machine.pk).update(status=Node.Status.REACHABLE)
    html = page(client, started.get_absolute_url())
    assert "Join w1 again" in html and 'action="/clusters/web/join/"' in html
    response = client.post("/clusters/web/join/", {"nodes": str(machine.pk)})
    again = Operation.objects.filter(kind=join.WORKERS).latest("pk")
    assert response.status_code == 302 and response["Location"] == again.get_absolute_url()
    assert again.pk != failed_join.pk and again.params["nodes"] == ["w1"]
    # Once the machine is being joined again, the reset's page offers it no more.
    assert "Join w1 again" not in page(client, started.get_absolute_url())

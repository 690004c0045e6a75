"""Explained node readiness on the pages (issue 20, item 4): the cluster page's node row says why
a Node is NotReady in a few words, the node page says what it means, shows the condition's own
message and the fix; both from the Nodes Kubeboard stored (kube.nodes.node_row keeps the
conditions), with no API call per request.

Real parts: the kubernetes client's own V1Node model turned into the stored row by kube.node_row,
the database, the Django test client rendering the real templates. The API server that wrote
such a Node (a hollow kubelet stopped on the test bed) is in tests/e2e/test_engine_cluster.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from kubernetes.client import V1Node, V1NodeCondition, V1NodeSpec, V1NodeStatus, V1ObjectMeta

import kube
from clusters.models import Cluster, ClusterInventory, MachineInventory
from kubeadm import node_conditions
from nodes.models import Node
from tests.conftest import team_of
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
NETWORK = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)


def api_node(name: str, ready: tuple[str, str, str], *, unschedulable: bool = False, heartbeat=T0) -> V1Node:
    """A Node as the kubernetes client hands it over: the kubelet's pressure conditions, then Ready."""
    status, reason, message = ready
    conditions = [
        V1NodeCondition(
            type="MemoryPressure",
            status="False",
            reason="KubeletHasSufficientMemory",
            message="kubelet has sufficient memory available",
            last_transition_time=T0,
            last_heartbeat_time=heartbeat,
        ),
        V1NodeCondition(
            type="Ready",
            status=status,
            reason=reason,
            message=message,
            last_transition_time=T0 + timedelta(minutes=1),
            last_heartbeat_time=heartbeat,
        ),
    ]
    return V1Node(
        metadata=V1ObjectMeta(name=name, labels={}, creation_timestamp=T0),
        spec=V1NodeSpec(unschedulable=unschedulable or None),
        status=V1NodeStatus(conditions=conditions),
    )


@pytest.fixture
def viewer(make_user):
    return make_user("vera", role="viewer")


@pytest.fixture
def cluster(viewer) -> Cluster:
    cluster = make_cluster("up", team=team_of(viewer), status=Cluster.Status.RUNNING)
    Node.objects.create(cluster=cluster, name="w1", address="10.0.0.22", status=Node.Status.JOINED)
    return cluster


def store(cluster: Cluster, *nodes: V1Node) -> None:
    ClusterInventory.objects.update_or_create(
        cluster=cluster,
        defaults={"collected_at": timezone.now(), "api_nodes": [kube.node_row(item) for item in nodes]},
    )


def page(user, url: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, element_id: str) -> str:
    return re.search(rf'<section class="card[^"]*" id="{element_id}".*?</section>', html, re.S)[0]


def node_row_html(html: str, name: str) -> str:
    return re.search(rf'<tr data-node="{name}">.*?</tr>', html, re.S)[0]


def test_the_stored_row_keeps_the_conditions_bounded():
    row = kube.node_row(api_node("w1", ("False", "KubeletNotReady", NETWORK)))
    assert row["ready"] is False
    assert row["conditions"] == [
        {
            "type": "MemoryPressure",
            "status": "False",
            "reason": "KubeletHasSufficientMemory",
            "message": "kubelet has sufficient memory available",
            "since": "2026-12-06T20:00:00+00:00",
        },
        {
            "type": "Ready",
            "status": "False",
            "reason": "KubeletNotReady",
            "message": NETWORK,
            "since": "2026-12-06T20:01:00+00:00",
        },
    ]
    # A healthy kubelet's heartbeat moves at every report: not stored, so a refresh that reads the
    # same Nodes stores the same rows (clusters.nodestatus compares them) and redraws no page.
    later = kube.node_row(api_node("w1", ("False", "KubeletNotReady", NETWORK), heartbeat=T0 + timedelta(minutes=5)))
    assert later == row


def test_no_pod_network_is_explained_on_both_pages(cluster, viewer):
    store(cluster, api_node("w1", ("False", "KubeletNotReady", NETWORK)))
    row = node_row_html(page(viewer, cluster.get_absolute_url()), "w1")
    assert "NotReady" in row
    assert '<a href="/clusters/up/nodes/w1/#node-kubernetes" title="Why, and the fix">no pod network</a>' in row

    part = section(page(viewer, "/clusters/up/nodes/w1/"), "node-kubernetes")
    assert 'id="node-explanation-pod-network"' in part and "severity-problem" in part
    assert "no CNI plugin is configured on this machine" in part
    assert f"Install one from {node_conditions.POD_NETWORK_PLACE}" in part
    assert '<a href="/clusters/up/#pod-network">Pod network part of the cluster page →</a>' in part
    assert f'<code class="condition-message">{NETWORK}</code>' in part  # the raw message, as written
    assert "kubectl get pods -A -o wide --field-selector spec.nodeName=w1" in part
    assert '<tr data-condition="Ready">' in part and '<tr data-condition="MemoryPressure">' in part


def test_with_the_network_rolled_out_the_fix_looks_at_its_pod(cluster, viewer):
    Cluster.objects.filter(pk=cluster.pk).update(pod_network="flannel", pod_network_applied="flannel v0.28.9")
    store(cluster, api_node("w1", ("False", "KubeletNotReady", NETWORK)))
    part = section(page(viewer, "/clusters/up/nodes/w1/"), "node-kubernetes")
    assert "Kubeboard rolled out Flannel v0.28.9, so its Pod on w1 is not running or not ready yet" in part


def test_the_live_refresh_is_shown_when_newer(cluster, viewer):
    """The refresh's Nodes (a kubelet stopped since the read-back) are what both pages explain."""
    store(cluster, api_node("w1", ("True", "KubeletReady", "kubelet is posting ready status")))
    stopped = kube.node_row(api_node("w1", ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")))
    ClusterInventory.objects.filter(cluster=cluster).update(
        refreshed_nodes=[stopped], refreshed_at=timezone.now() + timedelta(seconds=1)
    )
    assert "kubelet not posting status" in node_row_html(page(viewer, cluster.get_absolute_url()), "w1")
    part = section(page(viewer, "/clusters/up/nodes/w1/"), "node-kubernetes")
    assert 'id="node-explanation-kubelet-stopped"' in part
    assert "The kubelet last posted the Node's status" in part
    assert "curl -sk https://10.0.0.10:6443/healthz" in part


def test_an_expired_kubelet_certificate_read_back_is_named(cluster, viewer):
    store(cluster, api_node("w1", ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")))
    expired = (timezone.now() - timedelta(days=3)).isoformat()
    MachineInventory.objects.create(
        node=cluster.nodes.get(name="w1"),
        certificates=[{"kind": "kubeconfig", "path": "/etc/kubernetes/kubelet.conf", "not_after": expired}],
    )
    part = section(page(viewer, "/clusters/up/nodes/w1/"), "node-kubernetes")
    assert 'id="node-explanation-kubelet-certificate"' in part
    assert "client certificate expired 3 days ago" in part


def test_a_ready_cordoned_node_says_it_is_not_notready(cluster, viewer):
    store(cluster, api_node("w1", ("True", "KubeletReady", "kubelet is posting ready status"), unschedulable=True))
    row = node_row_html(page(viewer, cluster.get_absolute_url()), "w1")
    assert "node-why" not in row and "SchedulingDisabled" in row
    part = section(page(viewer, "/clusters/up/nodes/w1/"), "node-kubernetes")
    assert 'id="node-explanation-cordoned"' in part and "This is not NotReady" in part
    assert "severity-note" in part and "severity-problem" not in part  # shown as a note, not in red


def test_hostile_and_huge_messages_are_bounded_and_escaped(cluster, viewer):
    hostile = '<script>alert("x")</script>' + "m" * 200_000
    store(cluster, api_node("w1", ("False", "<b>Reason</b>", hostile)))
    # A row stored by hand or by an older Kubeboard may hold anything JSON holds.
    ClusterInventory.objects.filter(cluster=cluster).update(
        api_nodes=[
            {
                "name": "w1",
                "ready": False,
                "conditions": [{"type": "Ready", "status": "False", "message": hostile * 2}],
            },
            {"name": "stranger", "ready": False, "conditions": [None, 7, {"type": {"x": 1}}]},
        ]
    )
    html = page(viewer, cluster.get_absolute_url())
    assert "<script>alert" not in html
    assert "kubelet not ready" in node_row_html(html, "w1")
    part = section(page(viewer, "/clusters/up/nodes/w1/"), "node-kubernetes")
    assert "<script>alert" not in part and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in part
    assert len(part) < 10_000  # the message is cut at MESSAGE_MAX_CHARS, the table's copy shorter still


def test_a_machine_not_in_the_api_server(cluster, viewer):
    store(cluster, api_node("other", ("True", "KubeletReady", "kubelet is posting ready status")))
    part = section(page(viewer, "/clusters/up/nodes/w1/"), "node-kubernetes")
    assert "The API server listed no Node named w1" in part


def test_a_phase_waiting_for_a_node_without_a_network_says_so_and_gives_the_fix(monkeypatch):
    """Init's and a join's wait for the Node (kube.phase_wait_node_ready): on real machines without
    a pod network it times out; the error says why and the hint is the fix, not "check the kubelet"."""
    import threading
    from types import SimpleNamespace

    from core.phases import PhaseError
    from kube import phases, waits

    row = kube.node_row(api_node("w1", ("False", "KubeletNotReady", NETWORK)))
    monkeypatch.setattr(waits, "list_nodes", lambda target: [row])
    lines = []
    ctx = SimpleNamespace(
        cluster=SimpleNamespace(name="c"),
        node=SimpleNamespace(name="w1"),
        cancel_event=threading.Event(),
        log=lambda message, **kwargs: lines.append(message),
    )
    with pytest.raises(PhaseError) as info:
        phases.phase_wait_node_ready(ctx, timeout=0)
    assert info.value.message == "node w1 not Ready after 0 seconds (registered, not Ready yet: no pod network)"
    assert info.value.hint.startswith(f"Install one from {node_conditions.POD_NETWORK_PLACE} (kubeadm installs none)")
    assert lines == ["Waiting for node w1 to be Ready in the API server (registered, not Ready yet: no pod network)…"]

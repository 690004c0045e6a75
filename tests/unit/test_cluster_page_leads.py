"""Issue 18 item 3: the cluster page leads. One next step at the top for each stage of a cluster
(workflows.next_step), the page's sections in the steps' order with the details collapsed, the
operation page's way on, and the cluster list's health without a query per cluster."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import CertificateAuthority, Cluster, ClusterInventory, MachineInventory
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import make_cluster
from tokens.models import BootstrapToken

pytestmark = pytest.mark.django_db

PIN = "sha256:" + "ab" * 32
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvYc1kzWnUq2m1cJ6fG2nGqvYfMZ2bM2hJw0cXcCq6Z"


@pytest.fixture
def people(make_user):
    operator = make_user("olivia", role="operator")
    viewer = make_user("vera", role="viewer")
    return {"operator": operator, "viewer": viewer}


def ready_cluster(people, name: str = "lead", **fields) -> Cluster:
    values = {"ca_pin_hash": PIN, "status": Cluster.Status.READY} | fields
    return make_cluster(name, team=team_of(people["operator"]), **values)


def machine(cluster, name: str, *, pinned: bool = False, offered: bool = False, **fields) -> Node:
    keys = {"ssh_host_key": HOST_KEY} if pinned else ({"offered_host_key": HOST_KEY} if offered else {})
    return Node.objects.create(
        cluster=cluster, name=name, address=f"10.0.0.{Node.objects.count() + 11}", **keys, **fields
    )


def page(client, user, cluster) -> str:
    client.force_login(user)
    response = client.get(f"/clusters/{cluster.name}/")
    assert response.status_code == 200
    return response.content.decode()


def next_step(html: str) -> dict:
    """The next-step card as the page shows it: stage, title and where its action leads."""
    card = re.search(r'<section class="card next-step" id="next-step" data-stage="([\w-]+)".*?</section>', html, re.S)
    assert card, "the page has a next-step card"
    title = re.search(r'<h2 id="next-step-title">(.*?)</h2>', card.group(0), re.S).group(1)
    action = re.search(r'id="next-step-action"', card.group(0))
    link = re.search(r'<a class="button" href="([^"]+)" id="next-step-action"', card.group(0))
    form = re.search(r'<form method="post" action="([^"]+)" id="next-step-form"', card.group(0))
    return {
        "stage": card.group(1),
        "title": title.replace("&#x27;", "'"),
        "href": link.group(1) if link else None,
        "post": form.group(1) if form else None,
        "action": bool(action),
        "html": card.group(0),
    }


def test_each_stage_has_one_next_step_at_the_top(client, people):
    operator = people["operator"]
    cluster = make_cluster("lead", team=team_of(operator), status=Cluster.Status.PREPARING)
    prepare = Operation.objects.create(cluster=cluster, kind="prepare-identity", status=Operation.Status.RUNNING)

    step = next_step(page(client, operator, cluster))
    assert step["stage"] == "identity" and step["href"] == f"/operations/{prepare.pk}/"
    assert "identity is being prepared" in step["title"]

    Operation.objects.filter(pk=prepare.pk).update(status=Operation.Status.SUCCEEDED)
    Cluster.objects.filter(pk=cluster.pk).update(ca_pin_hash=PIN, status=Cluster.Status.READY)
    step = next_step(page(client, operator, cluster))
    assert step["stage"] == "ssh-key" and step["title"] == "Generate the cluster's SSH key"
    assert step["post"] == "/clusters/lead/nodes/_ssh-key/"
    # The step's button is the real action: it makes the key.
    client.post(step["post"])
    step = next_step(page(client, operator, cluster))
    assert step["stage"] == "machines" and step["href"] == "/clusters/lead/nodes/_add/"

    node = machine(cluster, "node-a")
    step = next_step(page(client, operator, cluster))
    assert (step["stage"], step["title"]) == ("machines", "Add a control-plane machine"), "a worker cannot init"

    Node.objects.filter(pk=node.pk).update(role=Node.Role.CONTROL_PLANE)
    step = next_step(page(client, operator, cluster))
    assert (step["stage"], step["title"], step["href"]) == ("check", "Check node-a", "/clusters/lead/nodes/node-a/")

    Node.objects.filter(pk=node.pk).update(offered_host_key=HOST_KEY)
    step = next_step(page(client, operator, cluster))
    assert (step["stage"], step["title"]) == ("check", "Accept node-a's host key")

    Node.objects.filter(pk=node.pk).update(ssh_host_key=HOST_KEY)
    html = page(client, operator, cluster)
    step = next_step(html)
    assert step["stage"] == "initialize" and step["href"] == "/clusters/lead/#cluster-actions"
    assert 'id="cluster-actions"' in html, "the step leads to the Initialize section"

    init = Operation.objects.create(cluster=cluster, kind="init", params={"node": "node-a"}, status="running")
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.INITIALIZING)
    step = next_step(page(client, operator, cluster))
    assert step["stage"] == "initialize" and step["href"] == f"/operations/{init.pk}/"
    assert "being initialized on node-a" in step["title"]

    Operation.objects.filter(pk=init.pk).update(status=Operation.Status.FAILED, error="kubelet never became healthy")
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.INIT_STOPPED)
    step = next_step(page(client, operator, cluster))
    assert step["title"] == "Initializing the control plane stopped" and step["href"] == f"/operations/{init.pk}/"
    assert "kubelet never became healthy" in step["html"]

    Operation.objects.filter(pk=init.pk).update(status=Operation.Status.SUCCEEDED, error="")
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING)
    Node.objects.filter(pk=node.pk).update(status=Node.Status.JOINED)
    worker = machine(cluster, "node-b")
    step = next_step(page(client, operator, cluster))
    assert (step["stage"], step["title"]) == ("check", "Check node-b"), "a machine to join is checked first"

    machine(cluster, "node-c")
    step = next_step(page(client, operator, cluster))
    assert step["title"] == "Check 2 machines and accept their host keys"
    assert step["href"] == "/clusters/lead/nodes/_host-keys/", "several at once on the page made for it"
    Node.objects.filter(name="node-c").delete()

    Node.objects.filter(pk=worker.pk).update(ssh_host_key=HOST_KEY)
    html = page(client, operator, cluster)
    step = next_step(html)
    assert step["stage"] == "join" and step["href"] == "/clusters/lead/#join-actions"
    assert 'id="join-workers-form"' in html, "the step leads to the Join form"
    assert html.index('id="cluster-actions"') < html.index('id="join-actions"'), "join after init"

    Node.objects.filter(pk=worker.pk).update(status=Node.Status.JOINED)
    step = next_step(page(client, operator, cluster))
    assert step["stage"] == "network" and "pod network" in step["title"]


BLANK = {"binaries": {"kubeadm": {"path": "", "version": None}}, "etc_kubernetes": {"files": [], "count": 0}}
FITS = {"binaries": {"kubeadm": {"path": "/usr/local/bin/kubeadm", "version": "v1.37.2", "skew": None}}}


def test_blank_machines_are_prepared_before_init_and_before_a_join(client, people):
    """Issue 19: a machine whose last check found no kubeadm leads to Prepare machines (the cluster
    page's section), the Prepare is followed while it runs and resumed when it stopped, and a
    prepared (checked again) machine leads on to Initialize; the same for a machine to join."""
    operator = people["operator"]
    cluster = ready_cluster(people)
    cp = machine(cluster, "node-a", pinned=True, role=Node.Role.CONTROL_PLANE, facts=BLANK)
    machine(cluster, "node-b", pinned=True, facts=BLANK)
    html = page(client, operator, cluster)
    step = next_step(html)
    assert (step["stage"], step["title"], step["href"]) == ("prepare", "Prepare 2 machines", "/clusters/lead/#prepare")
    assert "no kubeadm for Kubernetes v1.37.2 on node-a, node-b" in step["html"]
    assert 'id="prepare-machines-form"' in html and html.index('id="prepare"') < html.index('id="cluster-actions"')

    machines = [{"id": n.pk, "name": n.name} for n in cluster.nodes.order_by("name")]
    prepare = Operation.objects.create(
        cluster=cluster, kind="prepare-machines", status="running", params={"machines": machines}
    )
    step = next_step(page(client, operator, cluster))
    assert (step["stage"], step["href"]) == ("prepare", f"/operations/{prepare.pk}/")
    assert step["title"] == "Wait: machines are being prepared"

    Operation.objects.filter(pk=prepare.pk).update(status=Operation.Status.FAILED, error="containerd did not start")
    step = next_step(page(client, operator, cluster))
    assert (step["title"], step["href"]) == ("Preparing machines stopped", f"/operations/{prepare.pk}/")
    assert "containerd did not start" in step["html"]

    # Prepared: its last step checks each machine again, which finds kubeadm fit for the cluster.
    Operation.objects.filter(pk=prepare.pk).update(status=Operation.Status.SUCCEEDED, error="")
    Node.objects.filter(cluster=cluster).update(facts=FITS)
    step = next_step(page(client, operator, cluster))
    assert (step["stage"], step["href"]) == ("initialize", "/clusters/lead/#cluster-actions")

    # A machine never checked since its key was accepted says nothing: Initialize stays the step.
    Node.objects.filter(cluster=cluster).update(facts={})
    assert next_step(page(client, operator, cluster))["stage"] == "initialize"

    # After init, a blank machine to join is prepared first.
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING)
    Node.objects.filter(pk=cp.pk).update(status=Node.Status.JOINED, facts=FITS)
    Node.objects.filter(name="node-b").update(facts=BLANK)
    step = next_step(page(client, operator, cluster))
    assert (step["stage"], step["title"], step["href"]) == ("prepare", "Prepare node-b", "/clusters/lead/#prepare")
    Node.objects.filter(name="node-b").update(facts=FITS)
    assert next_step(page(client, operator, cluster))["stage"] == "join"


def test_a_viewer_sees_the_step_without_an_action(client, people):
    cluster = ready_cluster(people)
    step = next_step(page(client, people["viewer"], cluster))
    assert step["stage"] == "ssh-key" and not step["action"]
    assert "An operator or admin of team platform does this." in step["html"]


def test_the_page_follows_the_steps_and_keeps_the_details_collapsed(client, people):
    cluster = ready_cluster(people, kubeadm_config="apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
    CertificateAuthority.objects.create(cluster=cluster, name="ca", not_after=timezone.now() + timedelta(days=3650))
    html = page(client, people["operator"], cluster)

    def at(marker: str) -> int:
        assert marker in html, marker
        return html.index(marker)

    order = [
        'id="next-step"',
        'id="summary"',
        'id="cluster-tabs"',
        'id="nodes"',
        'id="ssh-key"',  # the key before the machines that need it
        'id="add-machine"',
        'id="cluster-actions"',
        'id="tokens"',
        'id="operations"',
        'id="identity"',
        'id="kubeadm-config"',
        'id="audit"',
    ]
    positions = [at(marker) for marker in order]
    assert positions == sorted(positions), "the next step first, the identity and its YAML far below"
    # The details are collapsed <details> (no "open"), each reachable from a tab.
    for detail in ("identity", "after-init", "audit-section", "cluster-facts", "engine-settings"):
        assert re.search(rf'<details class="[^"]*" id="{detail}">', html), detail
    tabs = re.search(r'<nav class="tabs" id="cluster-tabs".*?</nav>', html, re.S).group(0)
    targets = re.findall(r'href="#([\w-]+)">([^<]+)</a>', tabs)
    for target, _label in targets:
        assert f'id="{target}"' in html, f"the tab to #{target} has a section"
    assert ("cluster-actions", "Control plane") in targets, "the tab is named as its section"
    assert "<h2>Control plane</h2>" in html


def test_the_summary_shows_nodes_work_in_progress_and_the_soonest_expiries(client, people):
    cluster = ready_cluster(people, status=Cluster.Status.RUNNING)
    node = machine(cluster, "cp1", pinned=True, status=Node.Status.JOINED, role=Node.Role.CONTROL_PLANE)
    machine(cluster, "w1", pinned=True)
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=timezone.now() - timedelta(minutes=3),
        api_nodes=[{"name": "cp1", "ready": True, "roles": ["control-plane"], "kubelet_version": "v1.37.2"}],
    )
    soon = timezone.now() + timedelta(days=20, hours=1)
    MachineInventory.objects.create(
        node=node,
        collected_at=timezone.now(),
        certificates=[
            {"name": "apiserver", "path": "pki/apiserver.crt", "kind": "leaf", "not_after": soon.isoformat()},
            {"name": "kubelet", "path": "kubelet.conf", "kind": "kubeconfig", "not_after": timezone.now().isoformat()},
        ],
    )
    CertificateAuthority.objects.create(cluster=cluster, name="ca", not_after=timezone.now() + timedelta(days=3650))
    BootstrapToken.objects.create(
        cluster=cluster,
        token_id="abcdef",
        secret="0123456789abcdef",
        expires_at=timezone.now() + timedelta(hours=5, minutes=1),
    )
    join = Operation.objects.create(cluster=cluster, kind="join-workers", status=Operation.Status.RUNNING)
    html = page(client, people["viewer"], cluster)
    summary = re.search(r'<section class="card summary" id="summary".*?</section>', html, re.S).group(0)

    row = re.search(r'<tr data-node="cp1">.*?</tr>', summary, re.S).group(0)
    assert "Joined" in row and ">Ready<" in row and "v1.37.2" in row and "control-plane" in row
    assert '<span class="muted">—</span>' in re.search(r'<tr data-node="w1">.*?</tr>', summary, re.S).group(0)
    assert f'href="/operations/{join.pk}/"' in summary and "Join workers" in summary
    assert "apiserver on cp1 in 20 days" in summary, "the soonest certificate; kubelet.conf rotates itself"
    assert "token abcdef in 5 h" in summary
    assert "3 min ago" in summary


def list_page(client, user) -> tuple[str, int]:
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/clusters/")
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def busy_cluster(people, name: str) -> Cluster:
    cluster = ready_cluster(people, name, status=Cluster.Status.RUNNING)
    cp = machine(cluster, f"{name}-cp", pinned=True, status=Node.Status.JOINED)
    machine(cluster, f"{name}-w", pinned=True, status=Node.Status.JOINED)
    ClusterInventory.objects.create(
        cluster=cluster,
        collected_at=timezone.now(),
        api_nodes=[{"name": f"{name}-cp", "ready": True}, {"name": f"{name}-w", "ready": False}],
    )
    MachineInventory.objects.create(
        node=cp,
        collected_at=timezone.now(),
        certificates=[
            {
                "name": "apiserver",
                "path": "pki/apiserver.crt",
                "kind": "leaf",
                "not_after": (timezone.now() + timedelta(days=40, hours=1)).isoformat(),
            }
        ],
    )
    CertificateAuthority.objects.create(cluster=cluster, name="ca", not_after=timezone.now() + timedelta(days=3650))
    Operation.objects.create(cluster=cluster, kind="join-workers", status=Operation.Status.FAILED)
    return cluster


def test_the_list_shows_each_clusters_health_without_a_query_per_cluster(client, people):
    busy_cluster(people, "one")
    _, one_cluster = list_page(client, people["viewer"])

    for name in ("two", "three", "four"):
        busy_cluster(people, name)
    quiet = ready_cluster(people, "quiet")
    machine(quiet, "quiet-a")
    CertificateAuthority.objects.create(cluster=quiet, name="ca", not_after=timezone.now() + timedelta(days=400))
    upgrade = Operation.objects.create(cluster=quiet, kind="upgrade", status=Operation.Status.RUNNING)
    html, five_clusters = list_page(client, people["viewer"])
    assert five_clusters == one_cluster, f"{one_cluster} queries for 1 cluster, {five_clusters} for 5"

    def row(name: str) -> str:
        return re.search(rf'<tr data-cluster="{name}">.*?</tr>', html, re.S).group(0)

    assert "1/2 Ready" in row("three") and "status-failed" in row("three")
    assert "in 40 days" in row("three") and "apiserver on three-cp" in row("three")
    assert "Join workers" in row("three") and 'status-failed">Failed' in row("three")
    quiet_row = row("quiet")
    assert "— · 1 machine" in quiet_row, "nothing read back yet: the machines counted"
    assert "in 13 months" in quiet_row and "CA ca" in quiet_row
    assert f'href="/operations/{upgrade.pk}/"' in quiet_row and "status-running" in quiet_row

    # A live refresh newer than the read-back (an open cluster page asked the API server since):
    # the list counts the Nodes the page's summary shows, not the older read-back.
    ClusterInventory.objects.filter(cluster__name="three").update(
        refreshed_at=timezone.now() + timedelta(seconds=1),
        refreshed_nodes=[{"name": "three-cp", "ready": True}, {"name": "three-w", "ready": True}],
    )
    html, _ = list_page(client, people["viewer"])
    assert "2/2 Ready" in row("three"), row("three")


def test_a_saved_setting_comes_back_to_its_open_section(client, people):
    """The settings' forms moved into collapsed sections: their answers point at them (the page's
    script opens the <details> that holds the target)."""
    cluster = ready_cluster(people)
    client.force_login(people["operator"])
    response = client.post(
        f"/clusters/{cluster.name}/engine-settings/",
        {"ignore_preflight_errors": "", "join_parallelism": 2, "control_plane_join_method": "pre-seed"},
    )
    assert response.status_code == 302 and response.url == "/clusters/lead/#engine-settings"
    assert '<details class="engine-settings" id="engine-settings">' in page(client, people["operator"], cluster)


def test_expiries_read_every_shape_of_not_after():
    """kubeadm.readback writes ISO times with their offset; rows without one (or a bare date) are
    UTC, and a row that is no time is left out, never an error on the cluster list."""
    from datetime import UTC, datetime

    from clusters.health import leaf_expiries

    rows = [
        {"name": "apiserver", "kind": "leaf", "not_after": "2027-12-06T10:00:00+00:00"},
        {"name": "front-proxy-client", "kind": "leaf", "not_after": "2027-12-06T10:00:00"},
        {"name": "etcd-server", "kind": "leaf", "not_after": "2027-12-06"},
        {"name": "bad", "kind": "leaf", "not_after": "2027-13-45"},
        {"name": "ca", "kind": "ca", "not_after": "2035-01-01T00:00:00+00:00"},
        {"name": "kubelet", "kind": "kubeconfig", "path": "/etc/kubernetes/kubelet.conf", "not_after": "2026-01-01"},
    ]
    assert [(e.what, e.at) for e in leaf_expiries(rows, "cp1")] == [
        ("apiserver on cp1", datetime(2027, 12, 6, 10, tzinfo=UTC)),
        ("front-proxy-client on cp1", datetime(2027, 12, 6, 10, tzinfo=UTC)),
        ("etcd-server on cp1", datetime(2027, 12, 6, tzinfo=UTC)),
    ]

"""Kubeboard builds real clusters on blank test-bed machines, end to end.

Real sshd, real kubeadm v1.37.2 and control plane, hollow kubelets; Kubeboard runs as daphne +
a django-q2 worker process (``stack_factory``) and is driven like a person (the page's forms,
a websocket) or a script (``manage.py cluster init`` / ``node join``). Every connection to a
machine or API server passes the test bed's route guard (tests/support/environment.py).

* ``test_init_parallel_workers_and_upload_certs_control_plane``: Initialize from the page,
  two workers joined in parallel, a second control plane with kubeadm's upload-certs; a worker
  whose kubelet stops is explained on the open page's row and on its node page (the real node
  lifecycle controller's "Kubelet stopped posting node status.");
* ``test_commands_and_pre_seeded_control_plane``: the same through the management commands,
  the second control plane pre-seeded with the CAs from Kubeboard's custody — after a join that
  fails its preflight on ImagePull, undone with its page's one button (the reset empties the
  machine's /etc/kubernetes) and started again from the reset's page, a new join over its
  leftovers, and a resume once ImagePull is on the machine's ignore list (the attempts record
  both lists, the page shows the change).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

import kube
from addons import catalog, manifests
from audit.models import AuditEvent
from clusters.models import Cluster, MachineInventory
from core.network import check_destination
from kubeadm import pki
from nodes.models import Node
from operations.models import Event, Operation, PhaseAttempt
from tests.conftest import session_cookie, team_of
from tests.conftest import test_database_env as database_env
from tests.support import processes
from tests.support.etcdctl import member_names
from tests.support.processes import ROOT, wait_until
from tests.support.testbed_cluster import TESTBED_IGNORE_PREFLIGHT, add_machine, blank_machines, ready_cluster
from tests.support.web import collect, logged_in_session
from tokens.models import BootstrapToken, CertificateKey
from tools.testbed import preflight
from tools.testbed.guard import assert_routed_via_bridge
from workflows import network, readback

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(900)]

FINISHED = {"succeeded", "failed", "interrupted", "cancelled"}


def post_action(session, page_url: str, action_url: str, data: dict):
    """Submit one of the page's forms as the browser would (CSRF token from the page)."""
    page = session.get(page_url, timeout=30)
    page.raise_for_status()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(
        action_url, data={**data, "csrfmiddlewaretoken": token}, headers={"Referer": page_url}, timeout=60
    )


def watch(stack, operation: Operation, key: str) -> list[dict]:
    """Every event of the operation through a real websocket, from the first, until it ends."""
    events = collect(
        stack.ws,
        operation.pk,
        key,
        until=lambda got: any(e["kind"] == "status" and e["data"].get("status") in FINISHED for e in got),
        timeout=600,
    )
    operation.refresh_from_db()
    assert operation.status == Operation.Status.SUCCEEDED, (operation.error, stack.logs()[-5000:])
    # In order, none lost, none doubled: exactly what the database holds.
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    stored = list(Event.objects.filter(operation=operation).order_by("seq").values_list("seq", "message"))
    assert [(e["seq"], e["message"]) for e in events] == stored
    # Every planned phase ran for real and reached the client as running, then done.
    for phase in operation.phases.all():
        states = [
            e["data"]["status"]
            for e in events
            if e["kind"] == "phase" and e["phase"] == phase.name and e["group"] == phase.group
        ]
        assert states == ["running", "succeeded"], (phase.label, states)
        ran = [e for e in events if e["kind"] == "log" and e["phase"] == phase.name and e["group"] == phase.group]
        assert ran, f"phase {phase.label} reported nothing"
    return events


def kubeadm_output(events: list[dict], phase: str, group: str = "") -> list[str]:
    return [e["message"] for e in events if e["phase"] == phase and e["group"] == group and e["source"]]


def etcd_members(sb) -> int:
    return len(member_names(sb.node(1), sb.bin_dir))


def assert_api_server_uses_our_ca(cluster: Cluster, address: str) -> None:
    assert kube.readyz(cluster) == "ok"
    served = ssl.get_server_certificate((check_destination(address, 6443), 6443))
    ours = pki.load_certificate(cluster.authorities.get(name="ca").certificate_pem.encode())
    pki.verify_signed_by(pki.load_certificate(served.encode()), ours, name="API server certificate")


def assert_ready_nodes(cluster: Cluster, expected: dict[str, bool]) -> None:
    for name in expected:
        kube.wait_node_ready(cluster, name, timeout=120)
    rows = {row["name"]: row for row in kube.list_nodes(cluster)}
    assert {name: row["ready"] for name, row in rows.items()} == {name: True for name in expected}
    roles = {name: "control-plane" in row["roles"] for name, row in rows.items()}
    assert roles == expected


def secrets_of(cluster: Cluster) -> list[str]:
    """Every secret Kubeboard handled for this cluster: token secrets, certificate keys, CA keys,
    the cluster's SSH private key."""
    found = [row.plain_secret() for row in BootstrapToken.objects.filter(cluster=cluster)]
    found += [row.plain_key() for row in CertificateKey.objects.filter(cluster=cluster) if row.key]
    for authority in cluster.authorities.all():  # fresh rows: the fields are SecretValues
        body = authority.private_key.reveal().splitlines()
        found += [line for line in body if len(line) > 40]
    from nodes.models import ClusterSSHKey

    found += [
        line for line in ClusterSSHKey.objects.get(cluster=cluster).private_key.reveal().splitlines() if len(line) > 40
    ]
    return [value for value in found if value]


def assert_no_secret_leaked(cluster: Cluster, *texts: str) -> None:
    events = json.dumps(list(Event.objects.filter(operation__cluster=cluster).values("message", "data")))
    audit = json.dumps(list(AuditEvent.objects.filter(cluster=cluster).values("details")))
    haystacks = {"events": events, "audit": audit} | {f"text{i}": text for i, text in enumerate(texts)}
    for secret in secrets_of(cluster):
        for where, text in haystacks.items():
            assert secret not in text, f"a secret appears in {where}"


def assert_inventory(node: Node) -> None:
    machine = MachineInventory.objects.get(node=node)
    by_name = {row["name"]: row for row in machine.certificates}
    assert by_name["ca"]["custody"] == "same as Kubeboard's"
    assert by_name["etcd-ca"]["custody"] == "same as Kubeboard's"
    assert by_name["apiserver"]["custody"] == "signed by Kubeboard's ca"
    assert by_name["etcd-server"]["custody"] == "signed by Kubeboard's etcd/ca"
    assert by_name["apiserver"]["days_left"] > 360
    assert {row["name"] for row in machine.manifests} == {
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    }


def attempts_window(operation: Operation, group: str) -> tuple:
    rows = PhaseAttempt.objects.filter(phase__operation=operation, phase__group=group)
    return min(r.started_at for r in rows), max(r.finished_at for r in rows)


def manage(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = processes.kubeboard_env(**database_env())
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


LIVE_REFRESH_SECONDS = 2


def summary_row(html: str, node: str) -> str:
    summary = re.search(r'<section class="card summary" id="summary".*?</section>', html, re.S)
    assert summary, "the page or poll answer has the summary"
    row = re.search(rf'<tr data-node="{node}">.*?</tr>', summary[0], re.S)
    assert row, f"the summary lists {node}"
    return row[0]


def unschedulable(cluster: Cluster, node: str) -> bool:
    return {row["name"]: row["unschedulable"] for row in kube.list_nodes(cluster)}[node]


def pods_on(cluster: Cluster, node: str) -> list:
    import kubernetes.client

    with kube.client.connect(cluster, f"list Pods on {node}") as client:
        return (
            kubernetes.client.CoreV1Api(client)
            .list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
            .items
        )


def cordon_drain_uncordon_and_live_status(stack, session, page: str, key: str, cluster: Cluster) -> None:
    """The summary's Cordon, Drain and Uncordon on a joined worker, posted as its buttons do, against
    the real API server and hollow kubelet; then a Node changed behind Kubeboard's back shows on
    the open page by the live refresh alone (clusters.nodestatus, run by the stack's worker)."""
    import kubernetes.client

    scheduling = f"{page}day2/nodes/node2/scheduling/"

    def run_action(action: str) -> list[dict]:
        before = set(Operation.objects.filter(cluster=cluster, kind=action).values_list("pk", flat=True))
        response = post_action(session, page, scheduling, {"action": action})
        operation = Operation.objects.filter(cluster=cluster, kind=action).exclude(pk__in=before).get()
        assert response.url.endswith(operation.get_absolute_url()), response.url
        return watch(stack, operation, key)

    # A Pod the drain must evict (bare, bound to node2 as the scheduler would), beside the
    # kube-proxy DaemonSet Pod a drain leaves, as kubectl drain --ignore-daemonsets does.
    with kube.client.connect(cluster, "create a Pod on node2") as client:
        kubernetes.client.CoreV1Api(client).create_namespaced_pod(
            "default",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "drain-me"},
                "spec": {
                    "nodeName": "node2",
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
        )

    events = run_action("cordon")
    assert any("Cordoned node2" in e["message"] for e in events)
    assert unschedulable(cluster, "node2"), "the Node is unschedulable in the API server"
    row = summary_row(session.get(page, timeout=30).text, "node2")
    assert "SchedulingDisabled" in row and 'value="uncordon"' in row, row

    events = run_action("drain")
    said = [e["message"] for e in events]
    assert "Evicting pod default/drain-me" in said, said
    assert any(m.startswith("Drained node2: ") for m in said), said
    left = pods_on(cluster, "node2")
    assert "drain-me" not in {pod.metadata.name for pod in left}
    assert all(
        any(ref.kind == "DaemonSet" for ref in pod.metadata.owner_references or [])
        or "kubernetes.io/config.mirror" in (pod.metadata.annotations or {})
        for pod in left
    ), [pod.metadata.name for pod in left]
    assert not any("kube-proxy" in m and "Evicting" in m for m in said), "DaemonSet Pods stay"
    assert unschedulable(cluster, "node2")

    run_action("uncordon")
    assert not unschedulable(cluster, "node2"), "schedulable again"
    html = session.get(page, timeout=30).text
    row = summary_row(html, "node2")
    assert "SchedulingDisabled" not in row and 'value="cordon"' in row, row

    # Live: node3 cordoned with the Kubernetes client directly, no Kubeboard action; the open
    # page's poll (as htmx sends it, with the page's versions) shows it within the interval.
    from tests.support.live import page_versions

    versions = page_versions(html)
    assert "SchedulingDisabled" not in summary_row(html, "node3")
    # (Scheduled sweeps may write token records meanwhile; an action would queue an operation.)
    actions = Operation.objects.count(), AuditEvent.objects.filter(action__startswith="operation.").count()
    with kube.client.connect(cluster, "cordon node3 by hand") as client:
        kubernetes.client.CoreV1Api(client).patch_node("node3", {"spec": {"unschedulable": True}})
    changed_at = time.monotonic()
    shown = None
    while shown is None and time.monotonic() - changed_at < 60:
        answer = session.get(f"{page}live/", params=versions, timeout=30)
        assert answer.status_code in (200, 204), answer.status_code
        if answer.status_code == 200:
            versions |= page_versions(answer.text)
            if 'id="summary"' in answer.text and "SchedulingDisabled" in summary_row(answer.text, "node3"):
                shown = time.monotonic() - changed_at
        time.sleep(0.5)  # the page polls every second; twice as often here, to time it closely
    assert shown is not None, stack.logs()[-3000:]
    # Within the interval, plus the poll, the queue's look (0.1 s) and one list of the Nodes.
    assert shown <= LIVE_REFRESH_SECONDS + 3, shown
    assert "Kubernetes status live from the API server" in session.get(page, timeout=30).text
    after = Operation.objects.count(), AuditEvent.objects.filter(action__startswith="operation.").count()
    assert after == actions, "no Kubeboard action"


def stopped_kubelet_is_explained(stack, session, page: str, cluster: Cluster, stopped_at: float) -> None:
    """node3's kubelet was stopped: once the node lifecycle controller marks the Node Unknown
    ("Kubelet stopped posting node status."), the open page's live summary says why in its row,
    and the node page explains it with the fix (kubeadm.node_conditions), from the stored Nodes."""
    from tests.support.live import page_versions

    began = time.monotonic()
    html = session.get(page, timeout=30).text
    versions = page_versions(html)
    row = summary_row(html, "node3")
    # The controller's grace period (50 s by default), its 5 s monitor period, one refresh.
    while "kubelet not posting status" not in row and time.monotonic() - stopped_at < 50 + 5 + 60:
        answer = session.get(f"{page}live/", params=versions, timeout=30)
        if answer.status_code == 200:
            versions |= page_versions(answer.text)
            if 'id="summary"' in answer.text:
                row = summary_row(answer.text, "node3")
        time.sleep(1)
    assert "NotReady" in row and "kubelet not posting status" in row, (row, stack.logs()[-3000:])
    assert 'href="/clusters/alpha/nodes/node3/#node-kubernetes"' in row
    now = time.monotonic()
    print(
        f"node3 shown as not posting status {now - stopped_at:.0f} s after its kubelet stopped ({now - began:.0f} s here)"
    )
    part = re.search(
        r'<section class="card" id="node-kubernetes">.*?</section>',
        session.get(f"{page}nodes/node3/", timeout=30).text,
        re.S,
    )[0]
    assert 'id="node-explanation-kubelet-stopped"' in part, part
    assert '<code class="condition-message">Kubelet stopped posting node status.</code>' in part, part
    assert "Ready=Unknown, NodeStatusUnknown" in part and "The kubelet last posted the Node" in part, part
    assert "systemctl status kubelet" in part, part
    assert f"curl -sk https://{cluster.control_plane_endpoint}/healthz" in part, part


def test_init_parallel_workers_and_upload_certs_control_plane(stack_factory, operator):
    with blank_machines("kbtbj2", "10.213.72.0/24", 4) as sb:
        cluster = ready_cluster(
            "alpha",
            f"{sb.node(1).address}:6443",
            team=team_of(operator),
            user=operator,
            ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT,
            control_plane_join_method=Cluster.ControlPlaneJoinMethod.UPLOAD_CERTS,
            pod_network=catalog.NONE,  # init's pod-network phase says it skips (beta applies Flannel)
        )
        cp1, worker1, worker2, cp2 = (
            add_machine(cluster, sb, i, user=operator, control_plane=i in (1, 4)) for i in (1, 2, 3, 4)
        )
        # The summary's live Node status is asked for every 2 s here (15 s by default), so the
        # hand-made cordon below must show within seconds.
        stack = stack_factory(KUBEBOARD_NODE_STATUS_REFRESH_SECONDS=str(LIVE_REFRESH_SECONDS))
        key = session_cookie(operator)
        session = logged_in_session(stack.http, key)
        page = f"{stack.http}/clusters/alpha/"

        # Initialize from the cluster page.
        response = post_action(session, page, f"{page}initialize/", {"node": cp1.pk})
        init = Operation.objects.get(cluster=cluster, kind="init")
        assert response.status_code == 200 and response.url.endswith(init.get_absolute_url())
        events = watch(stack, init, key)
        checks = kubeadm_output(events, "preflight")
        assert "[preflight] Running pre-flight checks" in checks
        assert any("[WARNING ImagePull]" in line for line in checks), "preflight ran with its ignore list"
        assert set(init.params["ignore_preflight_errors"]) == set(preflight.TESTBED_INIT)
        assert "[certs] Using existing ca certificate authority" in kubeadm_output(events, "certs")
        skipped = [(e["level"], e["message"]) for e in events if e["phase"] == "pod-network" and e["kind"] == "log"]
        assert skipped == [
            (
                "warning",
                "Pod network: None. Kubeboard applies none on this cluster: skipped. On real machines the nodes "
                "stay NotReady until a network add-on runs.",
            )
        ], skipped
        assert any(
            "[mark-control-plane] Marking the node node1" in line
            for line in kubeadm_output(events, "mark-control-plane")
        )
        cluster.refresh_from_db()
        assert cluster.status == Cluster.Status.RUNNING
        assert_api_server_uses_our_ca(cluster, sb.node(1).address)
        assert_ready_nodes(cluster, {"node1": True})
        assert_inventory(cp1)
        modes = {path: sb.node(1).host_path(path).stat().st_mode & 0o777 for path in (
            "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/sa.key",
            "/etc/kubernetes/pki/sa.pub", "/etc/kubernetes/kubeboard/kubeadm-init.yaml")}  # fmt: skip
        assert modes == {
            "/etc/kubernetes/pki/ca.crt": 0o644,
            "/etc/kubernetes/pki/ca.key": 0o600,
            "/etc/kubernetes/pki/sa.key": 0o600,
            "/etc/kubernetes/pki/sa.pub": 0o600,
            "/etc/kubernetes/kubeboard/kubeadm-init.yaml": 0o600,
        }
        init_token = BootstrapToken.objects.get(cluster=cluster, description__contains=f"operation #{init.pk}")
        assert init_token.status == BootstrapToken.Status.ACTIVE

        # Two workers, in parallel, each with its own token.
        response = post_action(session, page, f"{page}join/", {"nodes": [worker1.pk, worker2.pk]})
        joins = Operation.objects.get(cluster=cluster, kind="join-workers")
        assert response.url.endswith(joins.get_absolute_url())
        watch(stack, joins, key)
        first, second = attempts_window(joins, "node2"), attempts_window(joins, "node3")
        assert first[0] < second[1] and second[0] < first[1], "the two workers joined at the same time"
        for node in (worker1, worker2):
            token = BootstrapToken.objects.get(cluster=cluster, node=node)
            assert token.purpose == BootstrapToken.Purpose.JOIN
            node.refresh_from_db()
            assert (node.role, node.status) == (Node.Role.WORKER, Node.Status.JOINED)

        # A second control plane, kubeadm's way: kubeadm-certs with a certificate key. Init uploaded
        # them (two hours); with only ten minutes left the join uploads them again with a fresh key.
        first_key = CertificateKey.objects.get(cluster=cluster, operation=init)
        CertificateKey.objects.filter(pk=first_key.pk).update(expires_at=timezone.now() + timedelta(minutes=10))
        done = manage(
            "node",
            "join",
            "alpha",
            "node4",
            "--control-plane",
            "--certificate-method",
            "upload-certs",
            "--user",
            operator.username,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert "node4:etcd-join: succeeded" in done.stdout and "operation succeeded" in done.stdout
        cp_join = Operation.objects.get(cluster=cluster, kind="join-control-plane")
        events = watch(stack, cp_join, key)
        assert any(
            "[download-certs] Downloading the certificates" in line
            for line in kubeadm_output(events, "control-plane-prepare", "node4")
        )
        assert any("too soon for a join" in e["message"] for e in events if e["phase"] == "certificate-key")
        certificate_key = CertificateKey.objects.get(cluster=cluster, operation=cp_join)
        lifetime = (certificate_key.expires_at - certificate_key.created_at).total_seconds()
        assert certificate_key.is_valid() and abs(lifetime - 7200) < 5, lifetime
        first_key.refresh_from_db()
        assert first_key.status == CertificateKey.Status.SUPERSEDED and not first_key.key

        assert_ready_nodes(cluster, {"node1": True, "node2": False, "node3": False, "node4": True})
        assert etcd_members(sb) == 2
        assert_inventory(cp2)

        # node3's kubelet stops now; the control plane marks its Node Unknown after its grace
        # period (50 s), which the scheduling actions below mostly wait out; checked after them.
        # The node's runner is its kubelet service (tools/README.md): without the kubelet's
        # config.yaml it stops the hollow kubelet, and does not restart it.
        sb.node(3).ssh("mv /var/lib/kubelet/config.yaml /var/lib/kubelet/config.yaml.stopped")
        stopped_at = time.monotonic()
        cordon_drain_uncordon_and_live_status(stack, session, page, key, cluster)
        stopped_kubelet_is_explained(stack, session, page, cluster, stopped_at)

        # Every token in the cluster is one Kubeboard made (kubeadm invented none).
        from tokens.sync import sync_cluster

        sync_cluster(cluster)
        assert not BootstrapToken.objects.filter(cluster=cluster, origin=BootstrapToken.Origin.EXTERNAL).exists()
        assert_no_secret_leaked(cluster, stack.logs(), done.stdout, done.stderr)


def assert_flannel_rolled_out(cluster: Cluster, nodes: list[str]) -> None:
    """Init's pod-network phase applied the pinned Flannel (one event per object) and its
    DaemonSet has a ready Pod on each of ``nodes`` (hollow kubelets: the API side only)."""
    import kubernetes.client

    pinned = catalog.newest(catalog.FLANNEL)
    init = Operation.objects.filter(cluster=cluster, kind="init").latest("pk")
    applied = Event.objects.filter(operation=init, phase="pod-network", data__has_key="object")
    wanted = network.desired_objects(cluster, manifests.Choice(catalog.FLANNEL, pinned.version))
    assert sorted(applied.values_list("data__object", flat=True)) == sorted(manifests.describe(o) for o in wanted)
    said = " ".join(Event.objects.filter(operation=init, phase="pod-network").values_list("message", flat=True))
    assert "DaemonSet kube-flannel/kube-flannel-ds rolled out: 1/1 ready." in said, said
    states = {state.description: state for state in network.rollouts(cluster, wanted)}
    daemonset = states["DaemonSet kube-flannel/kube-flannel-ds"]
    assert daemonset.ok and daemonset.ready == daemonset.desired == len(nodes), daemonset
    with kube.connect(cluster, "read the Flannel Pods") as client:
        pods = kubernetes.client.CoreV1Api(client).list_namespaced_pod("kube-flannel").items
    assert sorted(pod.spec.node_name for pod in pods) == sorted(nodes)
    assert Cluster.objects.get(pk=cluster.pk).pod_network_applied == f"flannel {pinned.version}"


def test_commands_and_pre_seeded_control_plane(stack_factory, operator, make_user, tmp_path):
    with blank_machines("kbtbj3", "10.213.73.0/24", 3) as sb:
        cluster = ready_cluster(
            "beta",
            f"{sb.node(1).address}:6443",
            team=team_of(operator),
            user=operator,
            ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT,
            # Issue 20: init applies the chosen pod network after kubeadm's addon phase.
            pod_network=catalog.FLANNEL,
            pod_network_version=catalog.newest(catalog.FLANNEL).version,
        )
        assert cluster.control_plane_join_method == Cluster.ControlPlaneJoinMethod.PRE_SEED
        add_machine(cluster, sb, 1, user=operator, control_plane=True)
        # node2 is a control plane whose own ignore list lacks ImagePull (see below).
        add_machine(cluster, sb, 2, user=operator, role=Node.Role.CONTROL_PLANE)
        add_machine(cluster, sb, 3, user=operator)
        stack = stack_factory()

        # A machine must be chosen when several could be the first control plane.
        refused = manage("cluster", "init", "beta")
        assert refused.returncode == 2 and "choose the machine with --node" in refused.stderr

        done = manage("cluster", "init", "beta", "--node", "node1", "--user", operator.username)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        for phase in ("preflight", "certs", "kubeconfig", "etcd", "control-plane", "kubelet-start",
                      "wait-control-plane", "upload-config", "upload-certs", "mark-control-plane",
                      "bootstrap-token", "kubelet-finalize", "addon", "pod-network"):  # fmt: skip
            assert f"==> {phase}: succeeded" in done.stdout, phase
        assert_flannel_rolled_out(cluster, ["node1"])
        assert "[certs] Using existing ca certificate authority" in done.stdout

        join_node2 = ("node", "join", "beta", "node2", "--control-plane", "--certificate-method", "pre-seed")
        # Without ImagePull in its ignore list the control-plane join fails kubeadm's preflight
        # (no container runtime to pull with), after upload-files pre-seeded the CA material.
        failed = manage(*join_node2)
        assert failed.returncode == 1, failed.stdout[-4000:] + failed.stderr[-4000:]
        assert "ImagePull" in failed.stdout
        assert sb.node(2).host_path("/etc/kubernetes/pki/ca.key").exists()
        # The failed join's page undoes it in one click: the reset of node2 empties its
        # /etc/kubernetes and leaves it blank; the reset's page starts the join again.
        first = Operation.objects.filter(cluster=cluster, kind="join-control-plane").latest("pk")
        session = logged_in_session(stack.http, session_cookie(operator))
        first_page = f"{stack.http}/operations/{first.pk}/"
        assert "Undo this join attempt on node2" in session.get(first_page, timeout=30).text
        pressed = post_action(session, first_page, f"{stack.http}/clusters/beta/day2/undo-join/node2/", {})
        undo = Operation.objects.filter(cluster=cluster, kind="reset-node").latest("pk")
        assert pressed.url == f"{stack.http}/operations/{undo.pk}/", pressed.url
        assert undo.params["undoes_join"] == first.pk and undo.requested_by == operator
        wait_until(lambda: Operation.objects.get(pk=undo.pk).status not in Operation.ACTIVE_STATUSES, timeout=300,
                   message="the undo of node2's join")  # fmt: skip
        undo.refresh_from_db()
        assert undo.status == Operation.Status.SUCCEEDED, (undo.error, list(undo.events.values_list("message")))
        # No file left (kubeadm reset keeps its empty directories), as the machine check counts.
        assert [p for p in sb.node(2).host_path("/etc/kubernetes").rglob("*") if not p.is_dir()] == []
        assert "Join node2 again" in session.get(pressed.url, timeout=30).text
        assert Node.objects.get(cluster=cluster, name="node2").status == Node.Status.REACHABLE  # checked again
        again = post_action(session, pressed.url, f"{stack.http}/clusters/beta/join/", {
            "nodes": Node.objects.get(cluster=cluster, name="node2").pk, "control_plane": "True"})  # fmt: skip
        rejoin = Operation.objects.filter(cluster=cluster, kind="join-control-plane").latest("pk")
        assert rejoin.pk != first.pk and again.url == f"{stack.http}/operations/{rejoin.pk}/", again.url
        wait_until(lambda: Operation.objects.get(pk=rejoin.pk).status not in Operation.ACTIVE_STATUSES, timeout=300,
                   message="the join started again")  # fmt: skip
        # The blank machine passes the check; the join fails only where this test makes it fail
        # (ImagePull is not ignored yet), writing the CA material again.
        assert rejoin.phases.get(group="node2", name="check-machine").status == "succeeded"
        assert not rejoin.events.filter(message__contains="written again, not mixed in").exists()
        assert rejoin.phases.get(group="node2", name="preflight").status == "failed"
        assert sb.node(2).host_path("/etc/kubernetes/pki/ca.key").exists()
        # Those leftovers are byte for byte what a join writes: a new join is not refused by them.
        failed = manage(*join_node2)
        assert failed.returncode == 1, failed.stdout[-4000:] + failed.stderr[-4000:]
        join = Operation.objects.filter(cluster=cluster, kind="join-control-plane").order_by("-pk").first()
        assert join.phases.get(group="node2", name="check-machine").status == "succeeded"
        assert join.phases.get(group="node2", name="preflight").status == "failed"
        assert join.events.filter(message__contains="written again, not mixed in").exists()
        hint = join.phases.get(group="node2", name="preflight").hint
        assert "ImagePull" in hint and "/clusters/beta/nodes/node2/edit/" in hint, hint
        # The person does what the hint says (the machine's own list) and resumes: the retried
        # preflight runs with the list as it is now.
        Node.objects.filter(cluster=cluster, name="node2").update(ignore_preflight_errors=["ImagePull"])
        done = manage("operation", "resume", str(join.pk), "--follow")
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert "node2:control-plane-prepare: succeeded" in done.stdout
        first, second = join.phases.get(group="node2", name="preflight").attempts.order_by("number")
        assert "ImagePull" not in first.settings["ignore-preflight-errors"]
        assert second.settings["ignore-preflight-errors"] == [*TESTBED_IGNORE_PREFLIGHT, "ImagePull"]
        assert second.changes == ["ignore-preflight-errors + ImagePull"]
        page = logged_in_session(stack.http, session_cookie(operator)).get(f"{stack.http}/operations/{join.pk}/")
        assert "attempt 2: ignore-preflight-errors + ImagePull" in page.text
        # The CA keys came from Kubeboard's custody over SFTP; nothing secret waits in the cluster.
        held = cluster.authorities.get(name="ca").private_key.reveal()
        assert sb.node(2).host_path("/etc/kubernetes/pki/ca.key").read_text() == held
        assert not CertificateKey.objects.filter(cluster=cluster).exists()

        assert not kube.secret_exists(cluster, "kubeadm-certs")

        done = manage("node", "join", "beta", "node3")
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

        # Joining a machine twice is refused before anything runs.
        again = manage("node", "join", "beta", "node3")
        assert again.returncode == 2 and "node3 has already joined the cluster" in again.stderr

        assert_ready_nodes(cluster, {"node1": True, "node2": True, "node3": False})
        assert etcd_members(sb) == 2
        assert_inventory(Node.objects.get(cluster=cluster, name="node2"))

        # Read back on request (a read-only operation in the worker): both control planes again.
        before = dict(MachineInventory.objects.filter(node__cluster=cluster).values_list("node__name", "collected_at"))
        again = readback.start_read_back(cluster, user=operator)
        wait_until(lambda: Operation.objects.get(pk=again.pk).status not in Operation.ACTIVE_STATUSES, timeout=120,
                   message="the read-back")  # fmt: skip
        assert Operation.objects.get(pk=again.pk).status == Operation.Status.SUCCEEDED
        after = dict(MachineInventory.objects.filter(node__cluster=cluster).values_list("node__name", "collected_at"))
        assert set(after) == {"node1", "node2"} and all(after[name] > before[name] for name in after)

        # An admin's downloaded kubeconfig works with the real kubectl (its own client certificate).
        admin = make_user("ada", team=team_of(operator).name, role="admin")
        session = logged_in_session(stack.http, session_cookie(admin))
        page = f"{stack.http}/clusters/beta/"
        download = post_action(session, page, f"{page}admin-kubeconfig/", {"ttl": "1h"})
        assert download.status_code == 200 and download.headers["Cache-Control"] == "no-store"
        config = tmp_path / "beta-admin.conf"
        config.write_text(download.text)
        assert_routed_via_bridge(sb.node(1).address, sb.bridge)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        nodes = subprocess.run(
            [str(sb.bin_dir / "kubectl"), f"--kubeconfig={config}", "get", "nodes", "-o", "name"],
            capture_output=True, text=True, env=env, timeout=30,
        )  # fmt: skip
        assert nodes.returncode == 0, nodes.stderr
        assert nodes.stdout.split() == ["node/node1", "node/node2", "node/node3"]
        assert AuditEvent.objects.filter(action="cluster.admin_kubeconfig_issued", actor=admin).count() == 1
        assert_no_secret_leaked(cluster, stack.logs(), done.stdout, done.stderr)

"""Reset nodes on the test bed, end to end (real kubeadm v1.37.2, etcd, control plane).

One cluster Kubeboard builds — a control plane, a worker, a second control plane (two etcd
members) — serves every assertion:

* with the second control plane's etcd stopped, resetting it is refused (etcd has no quorum to
  remove a member) and nothing changes; once etcd is back, it is reset: its member is gone (the
  member list shows one), its Node object too, the machine is blank;
* the last control plane cannot be reset while a worker remains;
* the worker is reset (drained, its join token revoked) and joins again.
"""

from __future__ import annotations

import time

import pytest

import kube
from clusters.models import Cluster
from nodes.checks import listening_ports
from nodes.models import Node
from operations.models import PhaseRun
from tests.conftest import team_of
from tests.support.day2 import messages, run
from tests.support.etcdctl import member_names
from tests.support.testbed_cluster import TESTBED_IGNORE_PREFLIGHT, add_machine, blank_machines, ready_cluster
from tokens.models import BootstrapToken
from workflows import reset
from workflows.init import start_init
from workflows.join import start_join

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(1200)]


def etcd_members(sb) -> list[str]:
    return member_names(sb.node(1), sb.bin_dir)


def wait_port(sb, index: int, port: int, *, listening: bool, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (port in listening_ports(sb.node(index).exec(["cat", "/proc/net/tcp"]).stdout.splitlines())) != listening:
        assert time.monotonic() < deadline, f"port {port} on node{index} still {'closed' if listening else 'open'}"
        time.sleep(1)


def api_nodes(cluster) -> set[str]:
    return {row["name"] for row in kube.list_nodes(cluster)}


def test_reset_control_plane_and_worker(transactional_db, operator):
    with blank_machines("kbtbx3", "10.213.93.0/24", 3) as sb:
        cluster = ready_cluster(
            "resettable",
            f"{sb.node(1).address}:6443",
            team=team_of(operator),
            user=operator,
            ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT,
        )
        cp1 = add_machine(cluster, sb, 1, user=operator, control_plane=True)
        worker = add_machine(cluster, sb, 2, user=operator)
        cp2 = add_machine(cluster, sb, 3, user=operator, control_plane=True)
        run(start_init(cluster, cp1, user=operator))
        cluster = Cluster.objects.get(pk=cluster.pk)
        run(start_join(cluster, [worker], user=operator))
        run(start_join(cluster, [cp2], control_plane=True, user=operator))
        assert etcd_members(sb) == ["node1", "node3"]
        kube.wait_node_ready(cluster, "node3", timeout=120)

        # --- quorum: cp2's etcd stopped, its reset refused, nothing changed ------------------------
        sb.node(3).exec(["mv", "/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/etcd.yaml.away"])
        wait_port(sb, 3, 2379, listening=False)
        refused = run(reset.start_reset(Node.objects.get(pk=cp2.pk), user=operator, confirm="node3"), expect="failed")
        check = refused.phases.get(name="check")
        assert check.status == PhaseRun.Status.FAILED
        assert "resetting node3 is refused: etcd has no quorum now" in check.error, check.error
        assert "bring the unhealthy members back" in check.hint
        assert all(p.status == PhaseRun.Status.PENDING for p in refused.phases.exclude(name="check"))
        sb.node(3).exec(["mv", "/etc/kubernetes/etcd.yaml.away", "/etc/kubernetes/manifests/etcd.yaml"])
        wait_port(sb, 3, 2379, listening=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                if etcd_members(sb) == ["node1", "node3"] and kube.readyz(cluster) == "ok":
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, "etcd did not recover"
            time.sleep(2)
        assert Node.objects.get(pk=cp2.pk).status == Node.Status.JOINED
        assert sb.node(3).host_path("/etc/kubernetes/manifests/etcd.yaml").exists()

        # --- the second control plane is reset ------------------------------------------------------
        done = run(reset.start_reset(Node.objects.get(pk=cp2.pk), user=operator, confirm="node3"))
        assert etcd_members(sb) == ["node1"]
        assert "node3" not in api_nodes(cluster)
        assert any("Removing node3's member keeps quorum" in m for m in messages(done, "check"))
        cp2.refresh_from_db()
        assert cp2.status == Node.Status.REACHABLE and not cp2.facts["etc_kubernetes"]["populated"]
        assert not list(sb.node(3).host_path("/etc/kubernetes/manifests").iterdir())
        assert not any(sb.node(3).host_path("/var/lib/etcd").iterdir())

        # --- the last control plane, with a worker left: refused before anything runs -------------
        with pytest.raises(reset.ResetRefused, match="last control plane while 1 worker"):
            reset.start_reset(Node.objects.get(pk=cp1.pk), user=operator, confirm="node1")

        # --- the worker is reset and joins again ------------------------------------------------------
        tokens = list(BootstrapToken.objects.filter(cluster=cluster, node=worker, status=BootstrapToken.Status.ACTIVE))
        assert tokens, "the join made a token for the worker"
        done = run(reset.start_reset(Node.objects.get(pk=worker.pk), user=operator, confirm="node2"))
        assert "node2" not in api_nodes(cluster)
        assert all(BootstrapToken.objects.get(pk=t.pk).status == BootstrapToken.Status.REVOKED for t in tokens), (
            "its tokens are revoked"
        )
        assert any("Cordoned node2" in m for m in messages(done, "drain"))
        rejoined = run(start_join(Cluster.objects.get(pk=cluster.pk), [Node.objects.get(pk=worker.pk)], user=operator))
        assert rejoined.phases.filter(status=PhaseRun.Status.SUCCEEDED).count() == rejoined.phases.count()
        row = kube.wait_node_ready(cluster, "node2", timeout=120)
        assert row["ready"] and api_nodes(cluster) == {"node1", "node2"}

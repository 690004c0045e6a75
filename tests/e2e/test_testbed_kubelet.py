"""Full kubeadm init and joins with kubemark's hollow kubelet as the kubelet.

The hollow kubelet (fake container runtime) registers nodes and performs the
real TLS bootstrap, so kubelet-start, wait-control-plane, mark-control-plane,
kubelet-finalize, addon, worker join and control-plane join run for real.
"""

from __future__ import annotations

import glob
import json
import os
import time

import pytest

from tests.support.etcdctl import member_names
from tools.testbed.binaries import selected_version
from tools.testbed.cluster import ControlPlane, kubeadm_join, new_bootstrap_token
from tools.testbed.testing import require_binaries, sandbox, unavailable

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

NAME = "kbtbk"
SUBNET = "10.213.3.0/24"


def test_kubeadm_init_and_joins_with_hollow_kubelet() -> None:
    bins = require_binaries()
    if not os.access(bins / "kubemark", os.X_OK):
        unavailable(f"{bins}/kubemark missing (tools/setup-testbed.sh builds it)")
    started = time.monotonic()
    with sandbox(NAME, SUBNET, size=3) as sb:
        cp1, worker, cp2 = sb.node(1), sb.node(2), sb.node(3)
        cp = ControlPlane(node=cp1, bin_dir=bins, version=selected_version(), token=new_bootstrap_token())
        for node in sb.nodes:
            node.start_runner(bins, kubelet=True)

        out = cp.kubeadm_init()
        assert "[kubelet-check] The kubelet is healthy" in out
        assert "Your Kubernetes control-plane has initialized successfully!" in out
        assert "[mark-control-plane] Marking the node node1 as control-plane" in out

        # Worker join: discovery with the CA hash, then TLS bootstrap via a CSR.
        out = kubeadm_join(worker, bins, cp.join_command())
        assert "This node has joined the cluster" in out
        # (checked inside the node: the file is a symlink to a node path)
        worker.ssh("test -s /var/lib/kubelet/pki/kubelet-client-current.pem")
        worker.ssh(
            "grep -q 'client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem' /etc/kubernetes/kubelet.conf"
        )
        assert not worker.host_path("/etc/kubernetes/bootstrap-kubelet.conf").exists()
        csrs = json.loads(cp.kubectl("get", "csr", "-o", "json").stdout)["items"]
        assert any(
            c["spec"]["username"].startswith("system:bootstrap:")
            and any(cond["type"] == "Approved" for cond in c["status"].get("conditions", []))
            for c in csrs
        ), "no approved bootstrap CSR"

        # Control-plane join: certificates from the kubeadm-certs Secret, etcd learner join.
        out = kubeadm_join(cp2, bins, cp.join_command(control_plane=True))
        assert "a new control plane instance was created" in out

        deadline = time.monotonic() + 60
        while True:
            nodes = json.loads(cp.kubectl("get", "nodes", "-o", "json").stdout)["items"]
            ready = {
                n["metadata"]["name"]: any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
                )
                for n in nodes
            }
            if ready == {"node1": True, "node2": True, "node3": True} or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert ready == {"node1": True, "node2": True, "node3": True}
        roles = {
            n["metadata"]["name"]: "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"] for n in nodes
        }
        assert roles == {"node1": True, "node2": False, "node3": True}
        assert len(member_names(cp1, bins)) == 2
    # kubemark's hard-coded /tmp dirs stayed inside the nodes.
    assert not glob.glob("/tmp/hollow-kubelet.*")
    print(f"init + 2 joins took {time.monotonic() - started:.1f}s")

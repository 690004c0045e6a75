"""Day two with kubeadm/'s commands on the real v1.37.2 (test bed): certificate expiry read from
the node and parsed, renewal, resetting a worker and a control plane phase by phase (the worker
joins again; the control plane's etcd member is gone).

The upgrade recipe (v1.36.3 -> v1.37.2, kubeadm upgrade apply/node phase by phase with the new
kubeadm) is proven in tests/e2e/test_day2_upgrade.py, on the phases Kubeboard runs with the same
``workflow`` commands: one boot of that upgrade in the suite, not three (CI time)."""

from __future__ import annotations

import os
import time

import pytest

from kubeadm import certs, kubeconfig, pki, workflow
from tests.e2e.kubeadm_steps import init_cluster, ok
from tools.testbed.binaries import selected_version
from tools.testbed.testing import require_binaries, sandbox, unavailable

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]


def _kubemark(bins) -> None:
    if not os.access(bins / "kubemark", os.X_OK):
        unavailable(f"{bins}/kubemark missing (tools/setup-testbed.sh builds it)")


def test_certificates_and_reset_with_kubeadm_commands() -> None:
    bins = require_binaries()
    _kubemark(bins)
    with sandbox("kbtbk3", "10.213.33.0/24", size=3) as sb:
        n1, n2, n3 = sb.nodes
        for node in sb.nodes:
            node.start_runner(bins, kubelet=True)
        made = init_cluster(n1, bins, selected_version())
        made.join_worker(n2)
        made.join_control_plane(n3, pre_seed=True)
        assert made.wait_ready({"node1", "node2", "node3"}) == {"node1": True, "node2": True, "node3": True}

        # --- check-expiration: kubeadm's view parsed, equal to ours computed from the same files ---
        rows, cas = certs.parse_check_expiration(ok(n1, workflow.certs_check_expiration_command()))
        tree = certs.load_pki(n1.host_path("/etc/kubernetes/pki"))
        confs = {
            name: kubeconfig.client_certificate(
                kubeconfig.parse_kubeconfig(n1.host_path(f"/etc/kubernetes/{name}").read_text())
            )
            for name in ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf")
        }
        our_rows, our_cas = certs.check_expiration(tree, confs)

        def minutes(table):
            return [
                (r.name, r.ca_name, r.expires.replace(second=0, microsecond=0), r.externally_managed) for r in table
            ]

        assert minutes(rows) == minutes(our_rows) and minutes(cas) == minutes(our_cas)
        assert not any(r.missing for r in rows) and len(rows) == 11

        # --- renewal: a new apiserver certificate from our CA --------------------------------------
        before = pki.load_certificate(n1.host_path("/etc/kubernetes/pki/apiserver.crt").read_bytes())
        out = ok(n1, workflow.certs_renew_command("apiserver"))
        assert "certificate for serving the Kubernetes API renewed" in out
        after = pki.load_certificate(n1.host_path("/etc/kubernetes/pki/apiserver.crt").read_bytes())
        assert after.serial_number != before.serial_number
        pki.verify_signed_by(after, made.authorities["ca"].cert)
        assert pki.alt_names(after) == pki.alt_names(before)

        # --- reset the worker phase by phase, then join it again -----------------------------------
        for phase in workflow.RESET_PHASES:
            ok(n2, workflow.reset_phase_command(phase.name, cri_socket="unix:///run/containerd/containerd.sock"))
        assert not n2.host_path("/etc/kubernetes/kubelet.conf").exists()
        assert not any(n2.host_path("/etc/kubernetes/pki").iterdir())
        made.cp.kubectl("delete", "node", "node2")
        n2.ssh("rm -rf /etc/kubernetes/kubeboard")  # reset leaves Kubeboard's own directory
        time.sleep(2)  # the runner notices the kubelet config is gone and stops the hollow kubelet
        out = made.join_worker(n2)
        assert "This node has joined the cluster:" in out["kubelet-wait-bootstrap"]

        # --- reset the second control plane: its etcd member goes away -----------------------------
        assert made.etcd_members(bins) == ["node1", "node3"]
        outputs = {p.name: ok(n3, workflow.reset_phase_command(p.name)) for p in workflow.RESET_PHASES}
        assert "Deleted contents of the etcd data directory: /var/lib/etcd" in outputs["remove-etcd-member"]
        assert made.etcd_members(bins) == ["node1"]
        made.cp.kubectl("delete", "node", "node3")
        assert made.wait_ready({"node1", "node2"}) == {"node1": True, "node2": True}

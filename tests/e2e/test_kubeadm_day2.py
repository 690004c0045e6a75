"""Day two with kubeadm/'s commands on the real v1.37.2 (test bed): certificate expiry read from
the node and parsed, renewal, resetting a worker and a control plane phase by phase (the worker
joins again; the control plane's etcd member is gone), and — when the older release is built — an
upgrade v1.36.3 -> v1.37.2 run phase by phase with the new kubeadm."""

from __future__ import annotations

import os
import time

import pytest

from kubeadm import certs, kubeconfig, pki, preflight, versions, workflow
from tests.e2e.kubeadm_steps import init_cluster, ok
from tools.testbed.binaries import DEFAULT_VERSION, OLDER_VERSION, BinariesMissing, find_binaries, selected_version
from tools.testbed.testing import require_binaries, sandbox, unavailable

pytestmark = pytest.mark.e2e


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


def test_upgrade_phase_by_phase_from_the_older_release() -> None:
    new = require_binaries(DEFAULT_VERSION)
    try:
        old = find_binaries(OLDER_VERSION)
    except BinariesMissing as exc:
        if os.environ.get("KUBEBOARD_TESTBED_OLDER") == "1":
            unavailable(str(exc))
        pytest.skip(f"older release not built (optional): {exc}")
    _kubemark(old)
    assert versions.upgrade_path(OLDER_VERSION, DEFAULT_VERSION) is None
    # The nodes' PATH has the older release (kubeadm, and kubemark as `kubelet`), as before a package upgrade.
    with sandbox("kbtbk5", "10.213.35.0/24", size=2, bin_dir=old) as sb:
        n1, n2 = sb.nodes
        for node in sb.nodes:
            node.start_runner(old, kubelet=True)
        made = init_cluster(n1, old, OLDER_VERSION)
        made.join_worker(n2)
        assert made.wait_ready({"node1", "node2"}) == {"node1": True, "node2": True}

        kubeadm_new = str(new / "kubeadm")
        outputs = {}
        for name in workflow.phase_names(workflow.UPGRADE_PHASES):
            if "/" in name:
                continue  # parents run their sub-phases
            outputs[name] = ok(
                n1,
                workflow.upgrade_apply_phase_command(
                    name, DEFAULT_VERSION, ignore_preflight_errors=preflight.TESTBED_UPGRADE, kubeadm=kubeadm_new
                ),
                timeout=900,
            )
        assert f'You have chosen to upgrade the cluster version to "{DEFAULT_VERSION}"' in outputs["preflight"]
        assert "The control plane instance for this node was successfully upgraded!" in outputs["control-plane"]
        assert "[addons] Applied essential addon: CoreDNS" in outputs["addon"]
        server = made.kubectl_json("version")["serverVersion"]["gitVersion"]
        assert server == DEFAULT_VERSION
        config = made.kubectl_json("-n", "kube-system", "get", "cm", "kubeadm-config")["data"]["ClusterConfiguration"]
        assert f"kubernetesVersion: {DEFAULT_VERSION}" in config

        node_out = {}
        for name in workflow.phase_names(workflow.UPGRADE_NODE_PHASES):
            if "/" in name:
                continue
            node_out[name] = ok(
                n2,
                workflow.upgrade_node_phase_command(
                    name, ignore_preflight_errors=preflight.TESTBED_UPGRADE_NODE_WORKER, kubeadm=kubeadm_new
                ),
            )
        assert "Skipping phase. Not a control plane node." in node_out["control-plane"]
        assert "The kubelet configuration for this node was successfully upgraded!" in node_out["kubelet-config"]

"""kubeadm init and joins phase by phase, on blank test-bed machines, exactly as kubeadm/ says.

Everything kubeadm-specific comes from the kubeadm package: the node configs
(nodeconfig.init_config_for_node / join_config_for_node), the CA files and their modes
(uploads.init_upload_files / control_plane_shared_files), each phase's command
(workflow.init_phase_command / join_phase_command) and the preflight ignore lists
(preflight.TESTBED_*). The real kubeadm v1.37.2 runs every phase separately over SSH:

* init on node1 with Kubeboard's CAs ("Using existing ... certificate authority"), preflight
  for real with its warnings, cluster-info verified against our pin and token;
* a worker join on node2;
* a control-plane join on node3 the upload-certs way (certificate key in the config);
* a control-plane join on node4 with the shared certificates pre-seeded (no download-certs);
* and that each preflight ignore list is the narrowest: dropping any entry makes preflight fail
  with that check's [ERROR];
* then day two on the same cluster with kubeadm/'s commands: certificate expiry read from node1
  and parsed, renewal, resetting the worker phase by phase (it joins again) and the pre-seeded
  control plane (its etcd member is gone).

One cluster for both (CI time): the day-two recipes were a test of their own on a second,
identical cluster. The upgrade recipe runs in tests/e2e/test_day2_upgrade.py.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from datetime import timedelta

import pytest

from kubeadm import (
    certkeys,
    certs,
    discovery,
    kubeconfig,
    nodeconfig,
    output,
    pki,
    tokens,
    uploads,
    workflow,
)
from kubeadm.config import Timeouts, default_cluster_configuration
from kubeadm.diagnose import diagnose
from tests.e2e.kubeadm_steps import Cluster, ok, run_init_phases
from tests.support.etcdctl import member_names
from tools.testbed import preflight
from tools.testbed.binaries import selected_version
from tools.testbed.cluster import ControlPlane
from tools.testbed.testing import require_binaries, sandbox, unavailable

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

NAME = "kbtbk2"
SUBNET = "10.213.32.0/24"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"


def run_phase(node, argv: list[str], *, timeout: float = 300) -> tuple[int, list[str]]:
    """Run one kubeadm command over SSH like the engine would; (exit status, output lines)."""
    proc = node.ssh(shlex.join(argv) + " 2>&1", check=False, timeout=timeout)
    return proc.returncode, proc.stdout.splitlines()


def ok_phase(node, argv: list[str], timeouts: dict, **kw) -> list[str]:
    started = time.monotonic()
    status, lines = run_phase(node, argv, **kw)
    timeouts[f"{node.name} {' '.join(argv[1:5])}"] = round(time.monotonic() - started, 2)
    assert status == 0, f"{shlex.join(argv)} on {node.name} exited {status}:\n" + "\n".join(lines)
    return lines


def checks(lines: list[str], level: str) -> set[str]:
    return {p.check for p in map(output.parse_line, lines) if p.source == "preflight" and p.level == level and p.check}


def test_init_and_joins_phase_by_phase_with_real_preflight() -> None:
    bins = require_binaries()
    if not os.access(bins / "kubemark", os.X_OK):
        unavailable(f"{bins}/kubemark missing (tools/setup-testbed.sh builds it)")
    version = selected_version()
    durations: dict[str, float] = {}
    with sandbox(NAME, SUBNET, size=4) as sb:
        n1, n2, n3, n4 = sb.nodes
        for node in sb.nodes:
            node.start_runner(bins, kubelet=True)
        # The nodes' kubelet (kubemark) answers kubeadm's `kubelet --version`.
        assert n1.ssh("kubelet --version").stdout.strip() == f"Kubernetes {version}"

        authorities = pki.generate_cluster_authorities("ECDSA-P256")
        pin = discovery.ca_pin_hash(authorities["ca"].cert)
        token = tokens.generate_token()
        certificate_key = certkeys.generate_certificate_key()
        cluster = default_cluster_configuration(version)
        cluster.cluster_name = "kbtbk2"
        cluster.control_plane_endpoint = f"{n1.address}:6443"
        cluster.encryption_algorithm = "ECDSA-P256"
        cluster.networking.pod_subnet = "10.244.0.0/16"

        # --- the narrowest ignore lists: each entry is needed (node4 is still blank) -------------
        init_cfg = nodeconfig.init_config_for_node(
            cluster, node_name=n4.name, advertise_address=n4.address, bootstrap_tokens=[token], cri_socket=CRI_SOCKET
        )
        n4.write_file(nodeconfig.INIT_CONFIG_PATH, init_cfg.encode(), nodeconfig.CONFIG_MODE)
        for dropped in preflight.TESTBED_INIT:
            rest = tuple(c for c in preflight.TESTBED_INIT if c != dropped)
            status, lines = run_phase(
                n4, workflow.init_phase_command("preflight", nodeconfig.INIT_CONFIG_PATH, ignore_preflight_errors=rest)
            )
            assert status == 1 and dropped in checks(lines, "error"), (dropped, lines)
        join_probe = nodeconfig.join_config_for_node(
            api_server_endpoint=f"{n1.address}:6443",
            token=token,
            ca_cert_hashes=[pin],
            node_name=n4.name,
            cri_socket=CRI_SOCKET,
        )
        n4.write_file(nodeconfig.JOIN_CONFIG_PATH, join_probe.encode(), nodeconfig.CONFIG_MODE)
        for dropped in preflight.TESTBED_JOIN_WORKER:
            rest = tuple(c for c in preflight.TESTBED_JOIN_WORKER if c != dropped)
            status, lines = run_phase(
                n4, workflow.join_phase_command("preflight", nodeconfig.JOIN_CONFIG_PATH, ignore_preflight_errors=rest)
            )
            assert status == 1 and dropped in checks(lines, "error"), (dropped, lines)
        n4.ssh("rm -rf /etc/kubernetes/kubeboard")

        # --- init on node1, every phase on its own -------------------------------------------------
        text = run_init_phases(
            n1,
            cluster,
            authorities,
            token,
            certificate_key,
            run=lambda node, argv: "\n".join(ok_phase(node, argv, durations)),
        )
        # preflight ran for real: every ignored check shows as a warning, none as an error.
        assert checks(text["preflight"].splitlines(), "warning") >= set(preflight.TESTBED_INIT)
        assert not checks(text["preflight"].splitlines(), "error")
        for ca in ("ca", "front-proxy-ca", "etcd/ca"):
            assert f"[certs] Using existing {ca} certificate authority" in text["certs"]
        assert '[certs] Using the existing "sa" key' in text["certs"]
        assert "[kubelet-check] The kubelet is healthy" in text["wait-control-plane"]
        assert "[control-plane-check] kube-apiserver is healthy" in text["wait-control-plane"]
        assert '[upload-certs] Storing the certificates in Secret "kubeadm-certs"' in text["upload-certs"]
        assert "Marking the node node1 as control-plane" in text["mark-control-plane"]
        assert "[addons] Applied essential addon: CoreDNS" in text["addon"]
        # secrets stay out of kubeadm's output
        assert token.secret not in "\n".join(text.values()) and certificate_key not in "\n".join(text.values())
        assert n1.host_path("/etc/kubernetes/pki/ca.crt").read_bytes() == authorities["ca"].cert_pem()
        pki.verify_signed_by(
            pki.load_certificate(n1.host_path("/etc/kubernetes/pki/apiserver.crt").read_bytes()), authorities["ca"].cert
        )

        cp = ControlPlane(node=n1, bin_dir=bins, version=version, token=str(token))
        # The controller manager's bootstrap signer adds jws-kubeconfig-<id> a moment after the
        # bootstrap-token phase has written cluster-info: wait for it, as the engine must.
        deadline = time.monotonic() + 60
        while True:
            data = json.loads(cp.kubectl("-n", "kube-public", "get", "cm", "cluster-info", "-o", "json").stdout)["data"]
            if f"jws-kubeconfig-{token.id}" in data or time.monotonic() > deadline:
                break
            time.sleep(1)
        discovery.verify_cluster_info(data, token, [pin])
        secret = json.loads(cp.kubectl("-n", "kube-system", "get", "secret", "kubeadm-certs", "-o", "json").stdout)
        assert certkeys.decrypt_kubeadm_certs(secret, certificate_key)["ca.key"] == authorities["ca"].key_pem()

        # --- worker join on node2 -------------------------------------------------------------------
        n2.write_file(
            nodeconfig.JOIN_CONFIG_PATH,
            nodeconfig.join_config_for_node(
                api_server_endpoint=cluster.control_plane_endpoint,
                token=token,
                ca_cert_hashes=[pin],
                node_name=n2.name,
                cri_socket=CRI_SOCKET,
                ignore_preflight_errors=preflight.TESTBED_JOIN_WORKER,
            ).encode(),
            nodeconfig.CONFIG_MODE,
        )
        worker = {}
        for phase in workflow.JOIN_WORKER_PHASES:
            worker[phase.name] = ok_phase(
                n2, workflow.join_phase_command(phase.name, nodeconfig.JOIN_CONFIG_PATH), durations
            )
        assert checks(worker["preflight"], "warning") >= set(preflight.TESTBED_JOIN_WORKER)
        assert not checks(worker["preflight"], "error")
        assert "This node has joined the cluster:" in worker["kubelet-wait-bootstrap"]
        n2.ssh("test -s /var/lib/kubelet/pki/kubelet-client-current.pem")
        assert not n2.host_path("/etc/kubernetes/bootstrap-kubelet.conf").exists()

        # --- failures users hit, produced live on node4 (still blank) and diagnosed ---------------
        def failed_join_preflight(**changes) -> tuple[int, list[str]]:
            args = (
                dict(
                    api_server_endpoint=cluster.control_plane_endpoint,
                    token=token,
                    ca_cert_hashes=[pin],
                    node_name=n4.name,
                    cri_socket=CRI_SOCKET,
                    ignore_preflight_errors=preflight.TESTBED_JOIN_WORKER,
                    # an unreachable endpoint is retried until the discovery timeout (5 min by default)
                    timeouts=Timeouts(discovery=timedelta(seconds=15)),
                )
                | changes
            )
            n4.write_file(nodeconfig.JOIN_CONFIG_PATH, nodeconfig.join_config_for_node(**args).encode(), 0o600)
            return run_phase(n4, workflow.join_phase_command("preflight", nodeconfig.JOIN_CONFIG_PATH))

        wrong_pin = "sha256:" + "0" * 64
        status, lines = failed_join_preflight(ca_cert_hashes=[wrong_pin])
        found = diagnose(lines, status, phase="preflight", pins=[wrong_pin])
        assert found.code == "ca-pin-mismatch" and found.details == {"actual": [pin], "expected": [wrong_pin]}
        status, lines = failed_join_preflight(token=tokens.generate_token())
        assert diagnose(lines, status, phase="preflight").code == "token-unknown"
        status, lines = failed_join_preflight(api_server_endpoint=f"{SUBNET.rsplit('.', 1)[0]}.99:6443")
        assert diagnose(lines, status, phase="preflight").code == "endpoint-unreachable"
        listener = n4.ssh(
            'setsid python3 -c \'import socket,time;s=socket.socket();s.bind(("0.0.0.0",10250));s.listen();'
            "time.sleep(120)' >/dev/null 2>&1 </dev/null & echo $!"
        ).stdout.strip()
        try:
            time.sleep(0.5)
            status, lines = failed_join_preflight()
            found = diagnose(lines, status, phase="preflight")
            assert found.code == "port-in-use" and found.details["ports"] == ["10250"]
        finally:
            n4.ssh(f"kill {int(listener)}")
        status, lines = run_phase(n4, ["env", "PATH=/usr/bin:/bin", "sh", "-c", "kubeadm version"])
        found = diagnose(lines, status, phase="preflight")
        assert status == 127 and found.code == "kubeadm-missing" and found.details["path"] == "kubeadm"
        n4.ssh("rm -rf /etc/kubernetes/kubeboard")

        # --- control-plane joins: node3 with upload-certs, node4 with pre-seeded certificates ------
        n3.write_file(
            nodeconfig.JOIN_CONFIG_PATH,
            nodeconfig.join_config_for_node(
                api_server_endpoint=cluster.control_plane_endpoint,
                token=token,
                ca_cert_hashes=[pin],
                node_name=n3.name,
                cri_socket=CRI_SOCKET,
                ignore_preflight_errors=preflight.TESTBED_JOIN_CONTROL_PLANE,
                control_plane_address=n3.address,
                certificate_key=certificate_key,
            ).encode(),
            nodeconfig.CONFIG_MODE,
        )
        for item in uploads.control_plane_shared_files(authorities):
            n4.write_file(item.path, item.data, item.mode)
        n4.write_file(
            nodeconfig.JOIN_CONFIG_PATH,
            nodeconfig.join_config_for_node(
                api_server_endpoint=cluster.control_plane_endpoint,
                token=token,
                ca_cert_hashes=[pin],
                node_name=n4.name,
                cri_socket=CRI_SOCKET,
                ignore_preflight_errors=preflight.TESTBED_JOIN_CONTROL_PLANE,
                control_plane_address=n4.address,
            ).encode(),
            nodeconfig.CONFIG_MODE,
        )
        joined = {}
        for node in (n3, n4):  # one at a time: etcd membership changes must not overlap
            joined[node.name] = {}
            for phase in workflow.JOIN_CONTROL_PLANE_PHASES:
                argv = workflow.join_phase_command(phase.name, nodeconfig.JOIN_CONFIG_PATH)
                joined[node.name][phase.name] = "\n".join(ok_phase(node, argv, durations))
            out = joined[node.name]
            assert not checks(out["preflight"].splitlines(), "error")
            assert "[etcd] Announced new etcd member joining to the existing etcd cluster" in out["etcd-join"]
            assert f"Marking the node {node.name} as control-plane" in out["control-plane-join"]
            assert "a new control plane instance was created" in out["wait-control-plane"]
            assert "kube-apiserver is healthy" in out["wait-control-plane"]
        assert "[download-certs] Downloading the certificates" in joined["node3"]["control-plane-prepare"]
        assert "download-certs" not in joined["node4"]["control-plane-prepare"]
        assert '[certs] Using the existing "sa" key' in joined["node4"]["control-plane-prepare"]
        for node in (n3, n4):
            assert node.host_path("/etc/kubernetes/pki/ca.key").read_bytes() == authorities["ca"].key_pem()

        deadline = time.monotonic() + 60
        while True:
            nodes = json.loads(cp.kubectl("get", "nodes", "-o", "json").stdout)["items"]
            ready = {
                n["metadata"]["name"]: any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
                )
                for n in nodes
            }
            if all(ready.values()) and len(ready) == 4 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert ready == {"node1": True, "node2": True, "node3": True, "node4": True}
        roles = {
            n["metadata"]["name"]: "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"] for n in nodes
        }
        assert roles == {"node1": True, "node2": False, "node3": True, "node4": True}
        assert member_names(n1, bins) == ["node1", "node3", "node4"]

        # === day two, on this cluster ================================================================
        made = Cluster(
            first=n1, config=cluster, authorities=authorities, token=token, certificate_key=certificate_key, cp=cp
        )

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
        pki.verify_signed_by(after, authorities["ca"].cert)
        assert pki.alt_names(after) == pki.alt_names(before)

        # --- reset the worker phase by phase, then join it again -----------------------------------
        for phase in workflow.RESET_PHASES:
            ok(n2, workflow.reset_phase_command(phase.name, cri_socket=CRI_SOCKET))
        assert not n2.host_path("/etc/kubernetes/kubelet.conf").exists()
        assert not any(n2.host_path("/etc/kubernetes/pki").iterdir())
        cp.kubectl("delete", "node", "node2")
        n2.ssh("rm -rf /etc/kubernetes/kubeboard")  # reset leaves Kubeboard's own directory
        time.sleep(2)  # the runner notices the kubelet config is gone and stops the hollow kubelet
        out = made.join_worker(n2)
        assert "This node has joined the cluster:" in out["kubelet-wait-bootstrap"]

        # --- reset the pre-seeded control plane: its etcd member goes away -------------------------
        outputs = {p.name: ok(n4, workflow.reset_phase_command(p.name)) for p in workflow.RESET_PHASES}
        assert "Deleted contents of the etcd data directory: /var/lib/etcd" in outputs["remove-etcd-member"]
        assert made.etcd_members(bins) == ["node1", "node3"]
        cp.kubectl("delete", "node", "node4")
        assert made.wait_ready({"node1", "node2", "node3"}) == {"node1": True, "node2": True, "node3": True}
    print("phase durations (s):", json.dumps(durations, indent=1))

"""Day two on real test-bed machines: an etcd snapshot of 10,000 keys, and the upgrade's
orchestration overhead.

* Snapshot: 10,000 keys (about 100 bytes each) written into a control plane's etcd; then
  Kubeboard's snapshot operation (``etcdctl snapshot save``, ``etcdutl snapshot status``, the file
  copied back as base64 over SSH, stored in encrypted chunks) against the same commands from a
  plain ``ssh`` (save, status, copy back to a local file).
* Upgrade: two identical clusters initialized by Kubeboard at v1.36.3 (a control plane and a
  worker). One is upgraded to v1.37.2 by Kubeboard's upgrade operation; on the other the same
  steps run from a plain loop of ``ssh`` commands: the etcd snapshot, the package commands,
  every ``kubeadm upgrade apply|node`` phase, ``kubectl drain``/``uncordon``, and a wait for each
  node's kubelet to report the new version. Kubeboard's own checks (check, kubeadm-version,
  control-plane-upgraded, done) do work the loop does not; the ratio leaves them out and the
  total is printed beside it (goal: <= 1.15x).

Prints figures, asserts nothing. Needs root, the test bed and the older release
(``KUBEBOARD_TESTBED_OLDER=1 bash tools/setup-testbed.sh``); uses the sandboxes kbtbx5
(10.213.95.0/24) and kbtbx6 (10.213.96.0/24), two machines each, one after the other.

    python bench/bench_day2.py [--keys 10000] [--skip-upgrade]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import setup_django, timed_operation  # noqa: E402  (ROOT is on sys.path now)

KUBEBOARD_ONLY = ("check", "kubeadm-version", "control-plane-upgraded", "done")


def cluster_of(sandbox, name: str, version: str):
    """A control plane and a worker, initialized and joined by Kubeboard (in this process)."""
    from clusters.models import Cluster
    from tests.support.testbed_cluster import TESTBED_IGNORE_PREFLIGHT, add_machine, ready_cluster
    from workflows.init import start_init
    from workflows.join import start_join

    cluster = ready_cluster(
        name,
        f"{sandbox.node(1).address}:6443",
        kubernetes_version=version,
        ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT,
    )
    cp = add_machine(cluster, sandbox, 1, control_plane=True)
    worker = add_machine(cluster, sandbox, 2)
    timed_operation(start_init(cluster, cp))
    timed_operation(start_join(Cluster.objects.get(pk=cluster.pk), [worker]))
    return Cluster.objects.get(pk=cluster.pk), cp, worker


def fill_etcd(node, keys: int) -> float:
    """Write ``keys`` keys through etcd's JSON gateway on the node (client certificate from the node)."""
    from core.network import check_destination

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(node.host_path("/etc/kubernetes/pki/etcd/ca.crt")))
    context.load_cert_chain(
        str(node.host_path("/etc/kubernetes/pki/etcd/healthcheck-client.crt")),
        str(node.host_path("/etc/kubernetes/pki/etcd/healthcheck-client.key")),
    )
    context.check_hostname = False
    host = check_destination(node.address, 2379)
    connection = http.client.HTTPSConnection(host, 2379, context=context, timeout=30)
    value = base64.b64encode(b"v" * 100).decode()
    began = time.perf_counter()
    for index in range(keys):
        body = json.dumps({"key": base64.b64encode(f"/bench/key-{index:06d}".encode()).decode(), "value": value})
        connection.request("POST", "/v3/kv/put", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"etcd put failed: {response.status}")
    connection.close()
    return time.perf_counter() - began


ETCDCTL = (
    "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
    "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key"
)


def snapshot_by_hand(node, local: Path) -> float:
    """save + status + copy back as base64 over one plain ssh, decoded into a local file."""
    path = "/etc/kubernetes/tmp/bench-snapshot.db"
    script = (
        f"mkdir -p /etc/kubernetes/tmp && {ETCDCTL} snapshot save {path} >/dev/null 2>&1 && "
        f"etcdutl snapshot status {path} -w json >/dev/null && base64 -w 12288 {path} && rm -f {path}"
    )
    began = time.perf_counter()
    done = subprocess.run(node.ssh_command(script), capture_output=True, check=True)
    local.write_bytes(base64.b64decode(done.stdout))
    return time.perf_counter() - began


def ssh(node, command: str) -> None:
    done = subprocess.run(node.ssh_command(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"by hand: {command} failed on {node.name}:\n{done.stdout}{done.stderr}")


def upgrade_by_hand(sandbox, operation_params: dict) -> float:
    """The upgrade operation's steps from a plain loop of ssh commands (same commands, same order)."""
    from kubeadm import workflow
    from workflows import upgrade

    cp, worker = sandbox.node(1), sandbox.node(2)
    target = operation_params["target"]
    values = upgrade._package_values(target)
    kubeadm_cmd = operation_params["kubeadm_package_command"].format(**values)
    kubelet_cmd = operation_params["kubelet_package_command"].format(**values)
    kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
    ignored = operation_params["ignore_preflight_errors"]
    began = time.perf_counter()
    path = "/etc/kubernetes/tmp/bench-pre-upgrade.db"
    ssh(cp, f"mkdir -p /etc/kubernetes/tmp && {ETCDCTL} snapshot save {path} && etcdutl snapshot status {path} -w json "
            f"&& base64 -w 12288 {path} >/dev/null && rm -f {path}")  # fmt: skip
    for node, phases, first in ((cp, upgrade.APPLY_PHASES, True), (worker, upgrade.WORKER_PHASES, False)):
        ssh(node, kubeadm_cmd)
        if not first:
            ssh(cp, f"{kubectl} drain {node.name} --ignore-daemonsets --delete-emptydir-data")
        for phase in phases:
            skip = tuple(ignored[node.name])
            if first:
                argv = workflow.upgrade_apply_phase_command(phase, target, ignore_preflight_errors=skip)
            else:
                argv = workflow.upgrade_node_phase_command(phase, ignore_preflight_errors=skip)
            ssh(node, " ".join(argv))
        if first:
            ssh(cp, f"{kubectl} drain {node.name} --ignore-daemonsets --delete-emptydir-data")
        ssh(node, kubelet_cmd)
        ssh(cp, f"until {kubectl} get node {node.name} -o jsonpath='{{.status.nodeInfo.kubeletVersion}}' "
                f"| grep -qx {target}; do sleep 1; done")  # fmt: skip
        ssh(cp, f"{kubectl} uncordon {node.name}")
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--skip-upgrade", action="store_true", help="measure the snapshot only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-bench-day2-") as data:
        setup_django(Path(data), testbed=True)
        from operations.models import PhaseRun
        from tests.support.day2 import UPGRADE_IGNORE, machines, package_commands_on_testbed
        from tools.testbed.binaries import DEFAULT_VERSION, OLDER_VERSION, find_binaries
        from workflows import backup, upgrade
        from workflows.models import DayTwoSettings, EtcdSnapshot

        old = find_binaries(OLDER_VERSION)
        kubeadm_cmd, kubelet_cmd = package_commands_on_testbed()
        settings = {
            "kubeadm_package_command": kubeadm_cmd,
            "kubelet_package_command": kubelet_cmd,
            "upgrade_ignore_preflight_errors": UPGRADE_IGNORE,
        }
        results: dict[str, float] = {}
        with machines("kbtbx5", "10.213.95.0/24", 2, release=old) as sb:
            cluster, cp, _ = cluster_of(sb, "bench-day2", OLDER_VERSION)
            # --- snapshot of 10,000 keys ---
            results["fill"] = fill_etcd(sb.node(1), args.keys)
            with tempfile.TemporaryDirectory() as local:
                results["snapshot_hand"] = snapshot_by_hand(sb.node(1), Path(local) / "s.db")
                hand_size = (Path(local) / "s.db").stat().st_size
            operation = backup.start_snapshot(cluster)
            results["snapshot_kubeboard"] = timed_operation(operation)
            snapshot = EtcdSnapshot.objects.get(operation=operation)
            saved = next(
                e.data.get("saved_seconds")
                for e in operation.events.filter(phase="snapshot")
                if "saved_seconds" in e.data
            )
            # --- the upgrade, by Kubeboard ---
            if not args.skip_upgrade:
                DayTwoSettings.objects.update_or_create(cluster=cluster, defaults=settings)
                up = upgrade.start_upgrade(cluster, DEFAULT_VERSION)
                results["upgrade_kubeboard"] = timed_operation(up)
                params = up.params
                results["kubeboard_only"] = sum(
                    p.duration.total_seconds() for p in PhaseRun.objects.filter(operation=up, name__in=KUBEBOARD_ONLY)
                )
                results["phase_sum"] = sum(p.duration.total_seconds() for p in PhaseRun.objects.filter(operation=up))
                phases = up.phases.count()
        if not args.skip_upgrade:
            with machines("kbtbx6", "10.213.96.0/24", 2, release=old) as sb:
                cluster_of(sb, "bench-day2-loop", OLDER_VERSION)
                results["upgrade_hand"] = upgrade_by_hand(sb, params)

    print(f"etcd holding {snapshot.total_keys} keys (filled {args.keys} in {results['fill']:.1f} s), "
          f"snapshot {snapshot.size_bytes / 1e6:.1f} MB, revision {snapshot.revision}")  # fmt: skip
    print(
        f"snapshot, Kubeboard operation (save, status, copy back, encrypt, store): {results['snapshot_kubeboard']:6.2f} s"
    )
    print(f"  of which save + status on the machine (one ssh command):              {saved:6.2f} s")
    print(f"snapshot, plain ssh (save, status, copy back to a file, {hand_size / 1e6:.1f} MB):       "
          f"{results['snapshot_hand']:6.2f} s")  # fmt: skip
    print(f"snapshot ratio Kubeboard / plain ssh:                                    "
          f"{results['snapshot_kubeboard'] / results['snapshot_hand']:6.2f}x")  # fmt: skip
    if args.skip_upgrade:
        return 0
    same = results["upgrade_kubeboard"] - results["kubeboard_only"]
    print(f"upgrade {OLDER_VERSION} -> {DEFAULT_VERSION}, Kubeboard, all {phases} phases:          "
          f"{results['upgrade_kubeboard']:7.1f} s (phases themselves: {results['phase_sum']:.1f} s)")  # fmt: skip
    print(f"  of which Kubeboard's own checks ({', '.join(KUBEBOARD_ONLY)}): {results['kubeboard_only']:5.1f} s")
    print(f"upgrade, Kubeboard, the steps the loop runs:                     {same:7.1f} s")
    print(f"upgrade, plain ssh loop (same steps by hand):                    {results['upgrade_hand']:7.1f} s")
    print(f"orchestration overhead ratio:                                    {same / results['upgrade_hand']:7.2f}x"
          "   (goal <= 1.15x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

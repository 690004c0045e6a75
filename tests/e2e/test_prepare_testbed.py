"""Issue 19 end to end, by Kubeboard's own operations: two bare test-bed machines prepared by
Prepare machine from the air-gapped artifact set, then Initialize and a worker join, with the
cluster ignoring only what the test bed cannot pass (``TESTBED_PREPARED``: SystemVerification,
cgroups v1 here), so CRI, ContainerRuntimeVersion, ImagePull and the ip_forward check run and pass.

ONE boot (CI time): sandbox ``kbtbp`` on 10.213.41.0/24, bare (private overlay roots, so
``KUBEBOARD_PREPARE_ROOT`` stays "/": everything Prepare writes lands in each node's own upper
layer). Real: sshd, SFTP, sha256sum, install, containerd 2.4.2 with runc, ctr/crictl, kubeadm and
the control plane. Stand-ins (tools/README.md "Bare machines"): the systemctl test double run by
the node's runner, and the hollow kubelet as ``bin/kubelet``. The host is compared before and after.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import kube
from artifacts.services import import_directory
from clusters.models import Cluster
from nodes.models import Node
from operations.models import Event, Operation
from operations.runner import run_operation
from tests.conftest import team_of
from tests.e2e.test_testbed_bare import assert_host_unchanged, host_snapshot, require_runtime_set
from tests.support.testbed_cluster import add_machine, ready_cluster
from tools.testbed.preflight import TESTBED_PREPARED
from tools.testbed.testing import require_host, sandbox
from workflows.init import start_init
from workflows.join import start_join
from workflows.models import MachinePreparation, PrepareSettings
from workflows.prepare import start_prepare

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(1500)]

NAME = "kbtbp"
SUBNET = "10.213.41.0/24"
# The checks a machine without a prepared runtime fails, which must now run and pass.
NOW_PASSING = ("CRI", "ContainerRuntimeVersion", "ImagePull", "FileContent--proc-sys-net-ipv4-ip_forward")
# Prepare's step name in its messages, per phase (workflows.prepare_steps).
CONTROL_PLANE_ONLY = tuple(
    f"images/{name}" for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
)
STEPS = {
    "swap": "swap",
    "kernel-modules": "kernel modules",
    "sysctl": "sysctl",
    "container-runtime": "container runtime",
    "kubernetes": "Kubernetes v1.37.2",
    "images": "images",
}


def messages(operation: Operation, group: str, phase: str = "") -> list[str]:
    events = Event.objects.filter(operation=operation, group=group)
    if phase:
        events = events.filter(phase=phase)
    return list(events.order_by("seq").values_list("message", flat=True))


def run(operation: Operation) -> Operation:
    status = run_operation(operation.pk)
    operation.refresh_from_db()
    if status != Operation.Status.SUCCEEDED:
        failed = operation.phases.filter(status="failed").first()
        where = f"{failed.group}/{failed.name}: {failed.error} ({failed.hint})" if failed else operation.error
        lines = Event.objects.filter(operation=operation).order_by("-seq").values_list("message", flat=True)[:40]
        pytest.fail(f"{operation.kind} {status}: {where}\n" + "\n".join(reversed(list(lines))))
    return operation


def test_prepare_bare_machines_then_init_and_join_with_only_system_verification_ignored(
    operator, transactional_db, settings, tmp_path: Path
) -> None:
    require_host()
    artifact_dir = require_runtime_set()
    settings.ARTIFACTS_DIR = tmp_path / "store"
    assert settings.PREPARE_ROOT == "/"  # the node's private root is what makes "/" safe here
    before = host_snapshot()
    started = time.monotonic()
    with sandbox(NAME, SUBNET, size=2, bare=True) as sb:
        booted = time.monotonic()
        the_set = import_directory(artifact_dir, user=operator)
        cluster = ready_cluster(
            "prep",
            f"{sb.node(1).address}:6443",
            team=team_of(operator),
            ignore_preflight_errors=list(TESTBED_PREPARED),
        )
        PrepareSettings.objects.update_or_create(cluster=cluster, defaults={"source": PrepareSettings.Source.ARTIFACTS})
        # No per-machine additions: the control plane's own list stays empty (no ImagePull).
        cp = add_machine(cluster, sb, 1, control_plane=True, ignore_preflight_errors=[])
        worker = add_machine(cluster, sb, 2)

        # Bare: nothing of Kubernetes there, forwarding off, br_netfilter built in without a
        # /sys/module entry (the kernel-modules step must not want modprobe, which does not exist).
        for node in sb.nodes:
            assert node.ssh("command -v kubeadm containerd kubelet", check=False).stdout.strip() == ""
            assert node.ssh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
        kernel = sb.node(1).ssh("test -e /sys/module/br_netfilter; echo $?; test -d /proc/sys/net/bridge; echo $?")
        modprobe = sb.node(1).ssh("command -v modprobe", check=False).stdout.strip()

        first = run(start_prepare(cluster, [cp, worker], user=operator))
        prepared = time.monotonic()
        for node in (cp, worker):
            said = messages(first, node.name)
            for phase, step in STEPS.items():
                if phase == "swap":  # a bare node has no swap at all (the host has none)
                    continue
                changed = [m for m in messages(first, node.name, phase) if m.startswith(f"{step}: changed: ")]
                assert changed, (node.name, phase, messages(first, node.name, phase))
            if kernel.stdout.split() == ["1", "0"] and not modprobe:
                assert not any("modprobe br_netfilter" in m for m in said), said
            assert MachinePreparation.objects.get(node=node).prepared_at is not None
            # The control plane gets the whole set; the worker no control-plane image (nor checks
            # or imports one), and the push says so.
            sent = sum(f.size for f in the_set.files.all() if node == cp or not f.path.startswith(CONTROL_PLANE_ONLY))
            assert MachinePreparation.objects.get(node=node).bytes_pushed == sent
            machine = sb.node(1 if node == cp else 2)
            images = machine.ssh("ctr -n k8s.io images ls -q").stdout
            assert ("registry.k8s.io/kube-apiserver:v1.37.2" in images) == (node == cp), images
            assert "registry.k8s.io/kube-proxy:v1.37.2" in images, images
        assert any(
            m.startswith(
                "4 control-plane images not sent: node2 is a worker (kube-apiserver, kube-controller-manager, "
                "kube-scheduler, etcd;"
            )
            for m in messages(first, worker.name, "push")
        ), messages(first, worker.name, "push")
        for node in (cp, worker):
            machine = sb.node(1 if node == cp else 2)
            assert machine.ssh("systemctl is-active containerd").stdout.strip() == "active"
            assert machine.ssh("kubeadm version -o short").stdout.strip() == "v1.37.2"
            assert machine.ssh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"

        again = run(start_prepare(cluster, [Node.objects.get(pk=cp.pk), Node.objects.get(pk=worker.pk)]))
        for node in (cp, worker):
            for phase, step in STEPS.items():
                assert f"{step}: already done, nothing changed." in messages(again, node.name, phase), (
                    node.name,
                    phase,
                    messages(again, node.name, phase),
                )
            assert MachinePreparation.objects.get(node=node).bytes_pushed == 0
        prepared_again = time.monotonic()

        init = run(start_init(cluster, Node.objects.get(pk=cp.pk), user=operator))
        join = run(start_join(cluster, [Node.objects.get(pk=worker.pk)], user=operator))
        for operation in (init, join):
            said = "\n".join(Event.objects.filter(operation=operation).values_list("message", flat=True))
            for check in NOW_PASSING:
                assert f"[WARNING {check}]" not in said and f"[ERROR {check}]" not in said, said[-3000:]
            # The one ignored check is seen ignored, not absent: preflight ran for real.
            assert "[WARNING SystemVerification]" in said, said[-3000:]
        cluster = Cluster.objects.get(pk=cluster.pk)
        for name in ("node1", "node2"):
            kube.wait_node_ready(cluster, name, timeout=180)
        assert {row["name"]: row["ready"] for row in kube.list_nodes(cluster)} == {"node1": True, "node2": True}
        # The kubelet the double started is the one Prepare installed, from the unit Prepare wrote.
        started_units = (sb.node(2).dir / "logs" / "runner.log").read_text()
        assert "kubelet.service: unit command /usr/local/bin/kubelet " in started_units, started_units[-2000:]
        done = time.monotonic()
    assert_host_unchanged(before)
    print(
        f"\nprepare e2e: boot {booted - started:.1f}s, prepare x2 {prepared - booted:.1f}s, "
        f"again {prepared_again - prepared:.1f}s, init+join+Ready {done - prepared_again:.1f}s, "
        f"total with teardown {time.monotonic() - started:.1f}s"
    )

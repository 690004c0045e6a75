"""Kubeboard driving blank test-bed machines, set up as a person would.

* ``blank_machines``: a sandbox whose nodes run the static-pod runner with the hollow kubelet
  and nothing else (no kubeadm run yet), torn down and checked for leftovers afterwards;
* ``ready_cluster``: a cluster whose identity Kubeboard prepared (its own CAs, the CA pin);
* ``add_machine``: a Node row with the cluster's generated key pair, the public key put into
  the machine's authorized_keys, the host key fetched and accepted by comparing fingerprints.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from clusters.models import Cluster
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION
from nodes import services as node_services
from nodes.connect import connect
from nodes.models import Node
from operations.models import Operation
from remote import ssh
from tests.support.processes import wait_until
from tools.testbed import Sandbox, preflight
from tools.testbed.testing import assert_no_traces, require_binaries


@contextmanager
def blank_machines(name: str, subnet: str, size: int, *, bin_dir: Path | None = None) -> Iterator[Sandbox]:
    """``size`` blank machines: sshd, runner and hollow kubelet waiting, nothing of kubeadm.

    ``bin_dir`` replaces the release's bin dir on the machines' PATH (e.g. one without
    kubeadm); the runner always uses the real binaries.
    """
    binaries = require_binaries()
    sandbox = Sandbox(name=name, subnet=subnet, size=size, bin_dir=bin_dir or binaries)
    try:
        sandbox.up()
        for node in sandbox.nodes:
            node.start_runner(binaries, kubelet=True)
        yield sandbox
    finally:
        sandbox.down()
    assert_no_traces(sandbox)


def ready_cluster(name: str, endpoint: str, *, team=None, user=None, **fields) -> Cluster:
    """A cluster with its identity prepared by the real prepare-identity operation (in-process)."""
    from clusters.services import create_cluster
    from operations.runner import run_operation

    values = {
        "kubernetes_version": DEFAULT_KUBERNETES_VERSION,
        "control_plane_endpoint": endpoint,
        "pod_subnet": "10.244.0.0/16",
        "encryption_algorithm": "ECDSA-P256",
    }
    values.update(fields)
    operation = create_cluster(Cluster(name=name, team=team, **values), user=user)
    run_operation(operation.pk)  # a running worker may have claimed it first: then wait for it
    wait_until(
        lambda: Operation.objects.get(pk=operation.pk).status not in Operation.ACTIVE_STATUSES,
        timeout=60,
        message="the prepare-identity operation",
    )
    operation.refresh_from_db()
    assert operation.status == Operation.Status.SUCCEEDED, list(operation.events.values_list("message"))
    return Cluster.objects.get(pk=operation.cluster_id)


def authorize(sandbox: Sandbox, public_key: str) -> None:
    """What a person does on each machine: add the cluster's public key to authorized_keys."""
    path = sandbox.state_dir / "authorized_keys"
    text = path.read_text()
    if public_key.strip() not in text:
        path.write_text(text.rstrip("\n") + "\n" + public_key.strip() + "\n")


def machine_fingerprint(sandbox: Sandbox, index: int) -> str:
    """The fingerprint the machine's owner reads with ssh-keygen -l on the machine itself."""
    pub = sandbox.node(index).dir / "ssh_host_ed25519_key.pub"
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def accept_host_key(node: Node, sandbox: Sandbox, index: int, *, user=None) -> Node:
    """First contact shows the fingerprint; it is compared with the machine's and accepted."""
    with pytest.raises(ssh.HostKeyUnknown) as info:
        connect(node)
    assert info.value.fingerprint == machine_fingerprint(sandbox, index)
    return node_services.accept_host_key(node, user=user, fingerprint=info.value.fingerprint)


def add_machine(
    cluster: Cluster, sandbox: Sandbox, index: int, *, user=None, name: str = "", control_plane: bool = False, **fields
) -> Node:
    """A machine as a person adds it; a control-plane machine has that role (Initialize and Join
    control plane offer only those) and also ignores what only control planes need to ignore on
    the test bed (the image pull)."""
    key = node_services.ensure_cluster_key(cluster, user=user)
    authorize(sandbox, key.public_key)
    machine = sandbox.node(index)
    values = {"address": machine.address, "ssh_port": 22, "ssh_user": "root", "credential": Node.Credential.CLUSTER_KEY}
    if control_plane:
        values["role"] = Node.Role.CONTROL_PLANE
        values["ignore_preflight_errors"] = list(TESTBED_CONTROL_PLANE_EXTRA)
    values.update(fields)
    node = Node.objects.create(cluster=cluster, name=name or machine.name, **values)
    return accept_host_key(node, sandbox, index, user=user)


# The narrowest lists that let kubeadm's preflight run for real on test-bed machines (no
# container runtime, cgroups v1, forwarding off; kubeadm.preflight says why each is there): the
# cluster's setting covers every machine, control planes add the image pull.
TESTBED_IGNORE_PREFLIGHT = list(preflight.TESTBED_JOIN_WORKER)
TESTBED_CONTROL_PLANE_EXTRA = [name for name in preflight.TESTBED_INIT if name not in preflight.TESTBED_JOIN_WORKER]


def package_source(server, repo: Path) -> dict:
    """A cluster's preparation settings for the test bed's local APT mirror (tools/testbed/aptrepo.py):
    the package source, the mirror's base and its signing key's fingerprint pinned."""
    from tools.testbed.aptrepo import fingerprint
    from workflows.models import PrepareSettings

    return {
        "source": PrepareSettings.Source.PACKAGES,
        "repository_url": server.mirror,
        "repository_key_fingerprint": fingerprint(repo),
    }


def prepared_cluster(
    name: str, sandbox: Sandbox, user, *, version: str, source: dict, control_plane_ignores: list[str]
) -> tuple[Cluster, Node, Node]:
    """A cluster of the sandbox's node1 (control plane) and node2 (worker), both prepared by
    Kubeboard's Prepare from ``source`` (a cluster's preparation settings), then initialized and
    joined by Kubeboard at ``version``; each operation must succeed."""
    from tests.conftest import team_of
    from tests.support.day2 import run
    from workflows.init import start_init
    from workflows.join import start_join
    from workflows.models import PrepareSettings
    from workflows.prepare import start_prepare

    cluster = ready_cluster(
        name,
        f"{sandbox.node(1).address}:6443",
        team=team_of(user),
        user=user,
        kubernetes_version=version,
        ignore_preflight_errors=list(preflight.TESTBED_PREPARED),
    )
    PrepareSettings.objects.update_or_create(cluster=cluster, defaults=source)
    cp = add_machine(cluster, sandbox, 1, user=user, control_plane=True, ignore_preflight_errors=control_plane_ignores)
    worker = add_machine(cluster, sandbox, 2, user=user)
    run(start_prepare(cluster, [cp, worker], user=user))
    run(start_init(cluster, Node.objects.get(pk=cp.pk), user=user))
    run(start_join(Cluster.objects.get(pk=cluster.pk), [Node.objects.get(pk=worker.pk)], user=user))
    cluster.refresh_from_db()
    return cluster, Node.objects.get(pk=cp.pk), Node.objects.get(pk=worker.pk)

"""Day-two tests on the test bed: machines running a chosen release, the test bed's package
commands, and running an operation in this process (the real runner, no worker needed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from operations.models import Event, Operation
from operations.runner import run_operation
from tools.testbed import Sandbox, preflight
from tools.testbed.binaries import cache_root
from tools.testbed.testing import assert_no_traces

# The test bed's package manager (tools/README.md, "Packages per node"): a cached release's
# binary linked into the node-private directory first on the machine's PATH. The runner's
# hollow kubelet follows the kubelet link (a "restart" of the kubelet).
PACKAGES_BIN = "/run/testbed/bin"


def package_commands_on_testbed() -> tuple[str, str]:
    cache = cache_root()
    kubeadm = (
        f"test -x {cache}/{{version}}/bin/kubeadm && mkdir -p {PACKAGES_BIN} && "
        f"ln -sfn {cache}/{{version}}/bin/kubeadm {PACKAGES_BIN}/kubeadm && kubeadm version -o short"
    )
    kubelet = (
        f"test -x {cache}/{{version}}/bin/kubemark && mkdir -p {PACKAGES_BIN} && "
        f"ln -sfn {cache}/{{version}}/bin/kubemark {PACKAGES_BIN}/kubelet && kubelet --version"
    )
    return kubeadm, kubelet


UPGRADE_IGNORE = list(preflight.TESTBED_UPGRADE)


@contextmanager
def machines(name: str, subnet: str, size: int, *, release: Path) -> Iterator[Sandbox]:
    """Blank machines whose PATH, runner and hollow kubelet are all of ``release``."""
    sandbox = Sandbox(name=name, subnet=subnet, size=size, bin_dir=release)
    try:
        sandbox.up()
        for node in sandbox.nodes:
            node.start_runner(release, kubelet=True)
        yield sandbox
    finally:
        sandbox.down()
    assert_no_traces(sandbox)


def ended_as(operation: Operation, expect: str) -> Operation:
    """``operation`` reread; an AssertionError with its last 40 events unless it ended ``expect``."""
    operation.refresh_from_db()
    if operation.status != expect:
        tail = list(Event.objects.filter(operation=operation).order_by("-seq").values_list("message", flat=True)[:40])
        raise AssertionError(
            f"operation {operation} ended {operation.status}: {operation.error}\n" + "\n".join(reversed(tail))
        )
    return operation


def run(operation: Operation, *, expect: str = Operation.Status.SUCCEEDED) -> Operation:
    """Run ``operation`` here, to its end, and check how it ended (the events say why not)."""
    run_operation(operation.pk)
    return ended_as(operation, expect)


def messages(operation: Operation, phase: str = "", group: str | None = None) -> list[str]:
    events = Event.objects.filter(operation=operation).order_by("seq")
    if phase:
        events = events.filter(phase=phase)
    if group is not None:
        events = events.filter(group=group)
    return list(events.values_list("message", flat=True))


def wait_done(operation: Operation, *, timeout: float = 900, expect: str = Operation.Status.SUCCEEDED) -> Operation:
    """Wait for a worker process to finish ``operation`` and check how it ended."""
    from tests.support.processes import wait_until

    wait_until(
        lambda: Operation.objects.get(pk=operation.pk).status not in Operation.ACTIVE_STATUSES,
        timeout=timeout,
        message=f"operation {operation.pk}",
    )
    return ended_as(operation, expect)


def assert_upgraded(cluster, nodes, version: str):
    """The cluster's record, its API server and every node's kubelet say ``version``; returns the
    cluster's state as read for that (``kube.cluster_state``)."""
    import kube

    cluster.refresh_from_db()
    assert cluster.kubernetes_version == version
    assert kube.server_version(cluster) == version
    state = kube.cluster_state(cluster)
    assert {n.name: n.kubelet_version for n in state.nodes.values()} == {node.name: version for node in nodes}
    return state

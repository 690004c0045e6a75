"""A kubeadm phase whose SSH connection breaks (a real OpenSSH sshd, the session killed on the
machine's side) reconnects, waits for the command still running there to end, and runs the phase
again — never two copies at once."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from nodes import services
from nodes.connect import run_kubeadm
from operations.models import Event, Operation
from operations.registry import OperationKind, PhaseSpec, PlannedPhase, register, unregister
from operations.runner import run_operation
from operations.services import start_operation
from tests.factories import make_cluster
from tests.integration.test_ssh import make_node, pin, sshd  # noqa: F401 - the real sshd fixture

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _phase(ctx) -> None:
    log = ctx.params["log"]
    script = f"echo start $(date +%s.%N) >> {log}; echo begun; sleep 3; echo end $(date +%s.%N) >> {log}"
    run_kubeadm(ctx, ["sh", "-c", script], label="the long command")


KIND = OperationKind(
    name="test-reconnect",
    label="Reconnect test",
    phases=(PhaseSpec("long", "a command that outlives its connection", _phase, idempotent=True),),
    plan=lambda operation: [PlannedPhase("long", node_id=operation.params["node_id"])],
)


def _sessions(master: int) -> list[int]:
    """The per-connection processes of this test's sshd (children of its master process only:
    other sshds on the host are left alone)."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines()[1:]:
        pid, ppid, args = line.split(None, 2)
        if int(ppid) == master and args.startswith("sshd"):
            found.append(int(pid))
    return found


def test_a_broken_connection_is_survived_once_without_overlap(sshd, tmp_path):  # noqa: F811
    cluster = make_cluster("c1")
    key = services.ensure_cluster_key(cluster)
    sshd.authorize(key.public_key)
    node = pin(make_node(sshd, cluster))
    log = tmp_path / "runs.log"
    register(KIND)
    try:
        master = int(sshd.pid_file.read_text().strip())
        operation = start_operation(cluster, KIND.name, params={"node_id": node.pk, "log": str(log)})
        killed: list[int] = []

        def cut_the_connection() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (log.exists() and "start" in log.read_text()):
                time.sleep(0.05)
            for pid in _sessions(master):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        cutter = threading.Thread(target=cut_the_connection)
        cutter.start()
        assert run_operation(operation.pk) == Operation.Status.SUCCEEDED
        cutter.join()
    finally:
        unregister(KIND.name)
    assert killed, "the test cut a connection"
    lines = log.read_text().split()
    starts = [float(v) for k, v in zip(lines[::2], lines[1::2], strict=True) if k == "start"]
    ends = [float(v) for k, v in zip(lines[::2], lines[1::2], strict=True) if k == "end"]
    assert len(starts) == 2 and len(ends) == 2, lines
    assert ends[0] <= starts[1], "the second run began only after the interrupted one ended"
    messages = list(Event.objects.filter(operation=operation).values_list("message", flat=True))
    assert any("broke while the long command ran" in m and "reconnecting" in m for m in messages), messages
    assert any("The interrupted command has ended; running the phase again." in m for m in messages)

"""What goes wrong on real machines ends in a clear state and message, and a resume after fixing
the cause completes the operation.

The machines' PATH starts with a bin directory of the test's own (``Sandbox(bin_dir=…)``): it
holds links to the real binaries, and kubeadm is first missing, then a small wrapper around the
real kubeadm that records each run (start and end, to prove no two runs of one phase overlap),
can slow one phase down (to kill a worker or cancel inside it), and prints hostile output (to
prove it is stored safely). kubeadm itself always runs for real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clusters.models import Cluster
from nodes import services
from nodes.models import Node
from operations.models import Event, Operation, PhaseAttempt, PhaseRun
from operations.runner import run_operation
from operations.services import cancel_operation, resume_operation
from remote import keys
from tests.conftest import team_of
from tests.conftest import test_database_env as database_env
from tests.support import processes
from tests.support.processes import wait_until
from tests.support.testbed_cluster import (
    TESTBED_IGNORE_PREFLIGHT,
    add_machine,
    authorize,
    blank_machines,
    machine_fingerprint,
    ready_cluster,
)
from tools.testbed import bin_dir as release_bin_dir
from workflows.init import InitRefused, start_init
from workflows.join import JoinRefused, start_join

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(900)]

WRAPPER = """#!/bin/sh
# Test instrumentation around the real kubeadm (see the module docstring).
dir={dir}
echo "start $$ $(hostname) $(date +%s.%N) $*" >> "$dir/kubeadm-runs.log"
slow="$dir/slow-$(hostname)"
if [ -f "$slow" ]; then
  read phase seconds < "$slow"
  case " $* " in *" $phase "*) rm -f "$slow"; sleep "$seconds";; esac
fi
if [ "$1 $2 $3" = "init phase certs" ]; then
  printf 'hostile: bad utf8 \\377\\376 colour \\033[31mRED\\033[0m title \\033]0;pwned\\007 end\\n'
  head -c 200000 /dev/zero | tr '\\0' 'x'; echo
fi
{real} "$@"; rc=$?
echo "end $$ $(hostname) $(date +%s.%N) rc=$rc $*" >> "$dir/kubeadm-runs.log"
exit $rc
"""


def machine_bin_dir(tmp_path: Path, *, with_kubeadm: bool) -> Path:
    """The machines' PATH entry: the release's binaries, kubeadm only if asked (as the wrapper)."""
    directory = tmp_path / "machine-bin"
    directory.mkdir(exist_ok=True)
    release = release_bin_dir()
    for binary in release.iterdir():
        if binary.name not in ("kubeadm", ".complete") and not (directory / binary.name).exists():
            (directory / binary.name).symlink_to(binary)
    if with_kubeadm:
        install_kubeadm(directory)
    return directory


def install_kubeadm(directory: Path) -> None:
    wrapper = directory / "kubeadm"
    wrapper.write_text(WRAPPER.format(dir=directory, real=release_bin_dir() / "kubeadm"))
    wrapper.chmod(0o755)


def runs(directory: Path, needle: str, host: str = "") -> list[tuple[float, float]]:
    """(start, end) of each recorded kubeadm run whose arguments contain ``needle`` (on ``host``);
    a run that never recorded its end (killed, or still running) ends at infinity."""
    starts: dict[str, float] = {}
    found = []
    log = directory / "kubeadm-runs.log"
    for line in log.read_text().splitlines() if log.exists() else []:
        kind, pid, where, stamp, *args = line.split()
        if needle not in " ".join(args) or (host and where != host):
            continue
        if kind == "start":
            starts[pid] = float(stamp)
        elif pid in starts:
            found.append((starts.pop(pid), float(stamp)))
    found += [(start, float("inf")) for start in starts.values()]  # still running (or killed)
    return sorted(found)


def failed(operation: Operation) -> PhaseRun:
    operation.refresh_from_db()
    assert operation.status == Operation.Status.FAILED, operation.status
    return operation.phases.get(status=PhaseRun.Status.FAILED)


def resumed_to_success(operation: Operation) -> Operation:
    resume_operation(operation)
    assert run_operation(operation.pk) == Operation.Status.SUCCEEDED, list(
        operation.events.order_by("-seq").values_list("message", flat=True)[:15]
    )
    operation.refresh_from_db()
    return operation


def command_lines(pids: list[int]) -> list[str]:
    """The command lines of ``pids`` that still run."""
    lines = []
    for pid in pids:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass  # ended meanwhile
    return lines


def restart_sshd_with_new_host_key(sb, index: int) -> None:
    """The machine was reinstalled: a new host key behind the same address."""
    node = sb.node(index)
    pid = int(node.host_path("/run/sshd.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, message="sshd to stop")
    key = node.dir / "ssh_host_ed25519_key"
    key.unlink()
    Path(f"{key}.pub").unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    node.exec(["/usr/sbin/sshd", "-f", str(node.dir / "sshd_config"), "-E", str(node.dir / "sshd.log")])
    time.sleep(0.5)


def test_machine_failures_are_clear_and_resumable(operator, tmp_path, transactional_db):
    bin_dir = machine_bin_dir(tmp_path, with_kubeadm=False)
    with blank_machines("kbtbj4", "10.213.74.0/24", 7, bin_dir=bin_dir) as sb:
        cluster = ready_cluster(
            "gamma",
            f"{sb.node(1).address}:6443",
            team=team_of(operator),
            ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT,
        )
        machines = {i: add_machine(cluster, sb, i, control_plane=i == 1) for i in range(1, 6)}

        # kubeadm missing: refused by the first phase, nothing else ran; then installed, resumed.
        init = start_init(cluster, machines[1])
        assert run_operation(init.pk) == Operation.Status.FAILED
        phase = failed(init)
        assert phase.name == "check-machine"
        assert "kubeadm not found" in phase.error and str(bin_dir) in phase.error
        assert "install kubeadm" in phase.hint
        assert not init.phases.filter(name="upload-files").exclude(status=PhaseRun.Status.PENDING).exists()
        assert Cluster.objects.get(pk=cluster.pk).status == Cluster.Status.INIT_STOPPED
        install_kubeadm(bin_dir)
        init = resumed_to_success(init)
        assert PhaseAttempt.objects.filter(phase__operation=init, phase__name="check-machine").count() == 2
        cluster.refresh_from_db()
        assert cluster.status == Cluster.Status.RUNNING

        # Hostile output (invalid UTF-8, ANSI escapes, a 200 kB line) is stored safely.
        certs = Event.objects.filter(operation=init, phase="certs")
        hostile = certs.get(message__startswith="hostile:").message
        assert hostile == "hostile: bad utf8 \ufffd\ufffd colour RED title  end"
        long_line = certs.get(message__startswith="xxxx").message
        assert len(long_line) < 9000 and "more characters cut" in long_line
        assert not Event.objects.filter(operation=init, message__contains="\x1b").exists()

        # A wrong SSH key: the machine refuses it; the key is authorized; resume.
        wrong = keys.generate_key_pair("someone-else")
        second = Node.objects.get(pk=machines[2].pk)
        second.credential, second.ssh_private_key = Node.Credential.PRIVATE_KEY, wrong.private_key
        second.save()
        join = start_join(cluster, [machines[2]])
        run_operation(join.pk)
        phase = failed(join)
        assert (phase.group, phase.name) == ("node2", "check-machine")
        assert f"refused key {wrong.fingerprint}" in phase.error and "authorized_keys" in phase.hint
        assert Node.objects.get(pk=machines[2].pk).status == Node.Status.FAILED
        authorize(sb, wrong.public_key)
        resumed_to_success(join)
        assert Node.objects.get(pk=machines[2].pk).status == Node.Status.JOINED

        # An unreachable address (unused, on the sandbox bridge): the address is corrected; resume.
        Node.objects.filter(pk=machines[3].pk).update(address="10.213.74.250")
        join = start_join(cluster, [machines[3]])
        run_operation(join.pk)
        phase = failed(join)
        assert phase.name == "check-machine" and "10.213.74.250" in phase.error
        assert "no route" in phase.error or "no SSH answer" in phase.error, phase.error
        Node.objects.filter(pk=machines[3].pk).update(address=sb.node(3).address)
        resumed_to_success(join)

        # A changed host key stops the join with both fingerprints; a person accepts the new one.
        pinned = machines[4].ssh_host_key_fingerprint
        restart_sshd_with_new_host_key(sb, 4)
        join = start_join(cluster, [machines[4]])
        run_operation(join.pk)
        phase = failed(join)
        offered = machine_fingerprint(sb, 4)
        assert phase.name == "check-machine" and pinned in phase.error and offered in phase.error
        assert Node.objects.get(pk=machines[4].pk).host_key_state == Node.HostKeyState.CHANGED
        services.accept_host_key(Node.objects.get(pk=machines[4].pk), user=operator, fingerprint=offered)
        resumed_to_success(join)

        # A phase that fails: port 10250 taken on the machine; kubeadm's preflight names it.
        listener = sb.node(5).popen(
            [
                "python3",
                "-c",
                "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 10250)); s.listen(); time.sleep(600)",
            ],
            tmp_path / "listener.log",
        )
        try:
            wait_until(lambda: "10250" in sb.node(5).exec(["ss", "-ltn"]).stdout, timeout=10, message="the listener")
            join = start_join(cluster, [machines[5]])
            run_operation(join.pk)
            phase = failed(join)
        finally:
            listener.kill()
            listener.wait()
        assert (phase.name, phase.attempt) == ("preflight", 1)
        assert "10250" in phase.error and "in use" in phase.error, phase.error
        assert phase.attempts.get().exit_status == 1
        assert phase.hint
        join = resumed_to_success(join)
        assert join.phases.get(group="node5", name="preflight").attempts.count() == 2

        # /etc/kubernetes not empty: refused with a reset offered, before kubeadm runs.
        stray = sb.node(6).host_path("/etc/kubernetes/kubelet.conf")
        stray.write_text("left over\n")
        sixth = add_machine(cluster, sb, 6)
        join = start_join(cluster, [sixth])
        run_operation(join.pk)
        phase = failed(join)
        assert phase.name == "check-machine" and "/etc/kubernetes is not empty" in phase.error
        assert "kubeadm reset" in phase.hint
        assert not join.phases.filter(name="join-token").exclude(status=PhaseRun.Status.PENDING).exists()
        services.run_check(sixth.pk)  # the machine check now knows: a new join is refused at once
        with pytest.raises(JoinRefused, match="reset"):
            start_join(cluster, [Node.objects.get(pk=sixth.pk)])
        stray.unlink()  # what `kubeadm reset` would have done
        resumed_to_success(join)

        # A Kubernetes version this kubeadm cannot deploy: refused before anything runs.
        old = ready_cluster("delta", f"{sb.node(7).address}:6443", team=team_of(operator), kubernetes_version="v1.35.0")
        seventh = add_machine(old, sb, 7, control_plane=True)
        services.run_check(seventh.pk)
        with pytest.raises(InitRefused, match=r"kubeadm v1\.37\.2 deploys only Kubernetes 1\.36 and 1\.37"):
            start_init(old, Node.objects.get(pk=seventh.pk))
        assert not old.operations.filter(kind="init").exists()
        Node.objects.filter(pk=seventh.pk).update(facts={})  # never checked: the first phase refuses it
        refused = start_init(old, Node.objects.get(pk=seventh.pk))
        run_operation(refused.pk)
        phase = failed(refused)
        assert phase.name == "check-machine" and "deploys only Kubernetes 1.36 and 1.37" in phase.error
        assert not runs(bin_dir, "phase", host="node7"), "no kubeadm phase ran on node7"
        assert not any(sb.node(7).host_path("/etc/kubernetes").iterdir())

        # One run per kubeadm phase at a time, everywhere.
        for needle in ("join phase preflight", "init phase certs", "join phase kubelet-start"):
            spans = runs(bin_dir, needle)
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), (needle, spans)


def test_worker_killed_mid_phase_and_cancel(stack_factory, operator, tmp_path):
    bin_dir = machine_bin_dir(tmp_path, with_kubeadm=True)
    with blank_machines("kbtbj5", "10.213.75.0/24", 3, bin_dir=bin_dir) as sb:
        cluster = ready_cluster(
            "epsilon",
            f"{sb.node(1).address}:6443",
            team=team_of(operator),
            ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT,
        )
        machines = {i: add_machine(cluster, sb, i, control_plane=i == 1) for i in (1, 2, 3)}
        lease = 10
        stack = stack_factory(KUBEBOARD_OPERATION_LEASE_SECONDS=str(lease))
        init = start_init(cluster, machines[1], user=operator)
        wait_until(lambda: Operation.objects.get(pk=init.pk).status not in Operation.ACTIVE_STATUSES, timeout=240,
                   interval=1, message="init")  # fmt: skip
        assert Operation.objects.get(pk=init.pk).status == Operation.Status.SUCCEEDED, stack.logs()[-3000:]

        # The worker dies (SIGKILL) while kubelet-start runs on node2.
        (bin_dir / "slow-node2").write_text("kubelet-start 15\n")
        join = start_join(Cluster.objects.get(pk=cluster.pk), [machines[2]], user=operator)
        wait_until(lambda: runs(bin_dir, "join phase kubelet-start", host="node2"), timeout=120, interval=0.2,
                   message="kubelet-start")  # fmt: skip
        stack.workers[0].stop(signal.SIGKILL)
        killed_at = time.time()
        env = processes.kubeboard_env(**database_env(), KUBEBOARD_OPERATION_LEASE_SECONDS=str(lease))
        stack.workers.append(processes.start_worker(env, stack.workers[0].log_path.parent, name="worker-restarted"))
        wait_until(
            lambda: PhaseAttempt.objects.filter(phase__operation=join, status=PhaseAttempt.Status.INTERRUPTED).exists(),
            timeout=lease + 20,
            interval=0.2,
            message="the operation to be marked interrupted",
        )
        interrupted = PhaseAttempt.objects.get(phase__operation=join, status=PhaseAttempt.Status.INTERRUPTED)
        assert (interrupted.phase.name, interrupted.number) == ("kubelet-start", 1)
        assert interrupted.finished_at.timestamp() - killed_at < lease + 5
        wait_until(lambda: Operation.objects.get(pk=join.pk).status not in Operation.ACTIVE_STATUSES, timeout=240,
                   interval=1, message="the resumed join")  # fmt: skip
        join.refresh_from_db()
        assert join.status == Operation.Status.SUCCEEDED, (join.error, stack.logs()[-3000:])
        retry = join.phases.get(group="node2", name="kubelet-start").attempts.get(number=2)
        assert retry.trigger == PhaseAttempt.Trigger.AUTO and retry.status == PhaseAttempt.Status.SUCCEEDED
        spans = runs(bin_dir, "join phase kubelet-start")
        assert len(spans) == 2 and spans[0][1] <= spans[1][0], f"kubelet-start ran twice at once: {spans}"
        assert Event.objects.filter(operation=join, message__contains="still running on node2").exists()

        # Cancel during a long phase: the operation stops and nothing of kubeadm is left on node3.
        # Started from the command line, which follows it live and exits 1 when it does not succeed.
        (bin_dir / "slow-node3").write_text("preflight 300\n")
        command = subprocess.Popen(
            [sys.executable, "manage.py", "node", "join", "epsilon", "node3", "--user", operator.username],
            cwd=processes.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            wait_until(lambda: any(end == float("inf") for _, end in runs(bin_dir, "join phase preflight", host="node3")),
                       timeout=120, interval=0.2, message="the slow preflight")  # fmt: skip
            join = Operation.objects.filter(cluster=cluster, kind="join-workers").order_by("-pk").first()
            assert join.params["nodes"] == ["node3"]
            asked = time.monotonic()
            cancel_operation(join, user=operator)
            output, _ = command.communicate(timeout=60)
        finally:
            command.kill()
        assert time.monotonic() - asked < 15
        assert command.returncode == 1, output
        assert "node3:preflight: cancelled" in output and f"manage.py operation resume {join.pk}" in output
        join.refresh_from_db()
        assert join.status == Operation.Status.CANCELLED
        assert "Cancelled by olivia during phase preflight on node3" in join.error
        leftovers = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert f"{bin_dir}/kubeadm" not in leftovers
        # The slow phase's sleep ran on node3, inside the sandbox's namespaces: a "sleep 300" elsewhere
        # on this machine (another test pass running beside this one, a shell) is not its leftover.
        assert not [args for args in command_lines(sb.processes()) if "sleep 300" in args]
        alive = "for f in /run/kubeboard/jobs/*.pid; do [ -f $f ] && kill -0 -$(cat $f) 2>/dev/null && echo $f; done"
        assert not sb.node(3).exec(["sh", "-c", alive + "; true"]).stdout.strip(), "a job still runs on node3"
        resume_operation(join, user=operator)
        wait_until(lambda: Operation.objects.get(pk=join.pk).status not in Operation.ACTIVE_STATUSES, timeout=240,
                   interval=1, message="the resumed join")  # fmt: skip
        assert Operation.objects.get(pk=join.pk).status == Operation.Status.SUCCEEDED, stack.logs()[-3000:]

"""remote.commands, the one helper that runs a command inside a phase, with a fake connection:
what reaches the phase's events, what is returned, the failure's wording, the wait for a
previous attempt's leftover and the one reconnect. (Real sshd: tests/integration/test_day2_reconnect.py.)"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from core.phases import OperationCancelled, PhaseError
from remote import commands, ssh


class FakePhase:
    def __init__(self, attempt: int = 1) -> None:
        self.node = SimpleNamespace(name="m1")
        self.phase = SimpleNamespace(name="preflight")
        self.attempt = attempt
        self.cancel_event = threading.Event()
        self.exit_status: int | None = None
        self.job = "kubeboard-op1-phase1"
        self.logged: list[tuple[str, str]] = []
        self.output: list[str] = []

    def log(self, message: str, level: str = "info", **data) -> None:
        self.logged.append((level, message))

    def output_line(self, line: str) -> None:
        self.output.append(line)

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise OperationCancelled("cancelled")


class FakeConnection:
    def __init__(self, lines=(), exit_status: int = 0, running: list[bool] | None = None, broken: bool = False):
        self.lines, self.exit_status, self.broken = list(lines), exit_status, broken
        self.running = list(running or [])  # answers of job_running, in order (then False)
        self.ran: list[tuple[str, str | None]] = []
        self.killed: list[str] = []

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def run(self, command, *, on_line=None, cancel=None, timeout=None, job=None, root=True) -> ssh.CommandResult:
        self.ran.append((command, job))
        if self.broken:
            raise ssh.Unreachable("the connection to m1 broke while a command ran")
        for line in self.lines:
            on_line(line)
        return ssh.CommandResult(exit_status=self.exit_status, signal=None, duration=0.1)

    def job_pgid(self, job: str) -> int | None:
        return 4242 if self.running and self.running[0] else None

    def job_running(self, job: str) -> bool:
        return self.running.pop(0) if self.running else False

    def kill_job(self, job: str) -> bool:
        self.killed.append(job)
        return True


def test_a_command_streams_redacted_lines_as_the_phases_job_and_returns_them():
    ctx, secrets = FakePhase(), commands.Secrets()
    secrets.add("s3cr3t-value")
    conn = FakeConnection(["uses s3cr3t-value", "token abcdef.0123456789abcdef"])
    status, lines = commands.run(ctx, conn, ["kubeadm", "version"], secrets=secrets)
    assert (status, ctx.exit_status) == (0, 0)
    assert lines == ctx.output == ["uses ***", "token abcdef.****************"]
    assert conn.ran == [("kubeadm version", ctx.job)]
    assert ctx.logged[0] == ("info", "$ kubeadm version")


def test_hidden_output_is_returned_as_is_and_not_shown():
    ctx = FakePhase()
    out = commands.run(ctx, FakeConnection(['{"k": "abcdef.0123456789abcdef"}']), "cat x.json", show=False)
    assert out.lines == ['{"k": "abcdef.0123456789abcdef"}'] and ctx.output == []


def test_a_failure_names_the_command_the_machine_and_kubeadms_diagnosis():
    ctx = FakePhase()
    conn = FakeConnection(["[ERROR Swap]: swap is on", "error execution phase preflight"], exit_status=1)
    with pytest.raises(PhaseError) as info:
        commands.run(ctx, conn, ["kubeadm", "init", "phase", "preflight"], label="kubeadm init phase preflight")
    assert str(info.value).startswith("kubeadm init phase preflight failed on m1 (exit status 1)")
    assert info.value.exit_status == 1 and info.value.hint
    assert commands.run(ctx, conn, "false", check=False).exit_status == 1


def test_a_retry_waits_for_the_earlier_attempts_leftover_first():
    ctx = FakePhase(attempt=2)
    conn = FakeConnection(["ok"], running=[True, True, False])
    commands.run(ctx, conn, ["true"])
    messages = [message for _, message in ctx.logged]
    assert "still running on m1 (process group 4242)" in messages[0]
    assert messages[1] == "The earlier command has ended; running the phase again."
    assert conn.killed == []


def test_a_broken_connection_is_survived_once_after_the_command_ends():
    ctx = FakePhase()
    first, second = FakeConnection(broken=True), FakeConnection(["done"], running=[True, False])
    opened = iter([first, second])
    commands.run_reconnecting(ctx, lambda: next(opened), ["kubeadm", "upgrade", "node"], label="kubeadm upgrade node")
    assert any(level == "warning" and "reconnecting" in message for level, message in ctx.logged)
    assert "The interrupted command has ended; running the phase again." in [m for _, m in ctx.logged]
    assert ctx.output == ["done"] and len(second.ran) == 1

    ctx = FakePhase()
    broken = iter([FakeConnection(broken=True), FakeConnection(broken=True)])
    with pytest.raises(PhaseError, match="broke"):
        commands.run_reconnecting(ctx, lambda: next(broken), ["true"], label="true")


def test_a_phase_without_its_machine_is_refused_before_connecting():
    ctx = FakePhase()
    ctx.node = None
    with pytest.raises(PhaseError, match="has no machine"):
        with commands.connection(ctx, lambda: pytest.fail("connected")):
            pass

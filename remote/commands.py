"""Commands on a machine from inside a phase: connect, upload, run, report.

Every operation that drives a machine (init, join, the day-two kinds) runs its commands through
here, and trouble becomes ``PhaseError`` with a hint, so the operation page says what to do next.

Safety rules kept here, once:
* one SSH connection per phase (``connection``: guard checked, host key pinned by ``remote.ssh``);
* each remote command runs as the phase's *job* (``ctx.job``): a cancel kills its process group,
  and an attempt after a crashed worker (or a broken connection) first waits for the previous
  attempt's leftover to end, so one phase never runs twice at the same time on a machine;
* output lines become typed events with every secret Kubeboard knows for this phase (token
  secrets, certificate keys) replaced by ``***`` first; command lines shown never carry one
  (secrets travel in 0600 files, never in argv).

A phase is anything shaped like ``operations.runner.PhaseContext`` (``Phase`` below): this
package sits below the operations engine and does not import it.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn, Protocol

from core.phases import OperationCancelled, PhaseError
from core.waiting import WaitCancelled, WaitTimedOut, wait_until
from kubeadm import output as kubeadm_output
from kubeadm.diagnose import diagnose as kubeadm_diagnose
from remote import ssh

# kubeadm's own waits are at most a few minutes (timeouts in the config); this is the backstop.
COMMAND_TIMEOUT = 20 * 60
# How long a new attempt waits for a leftover command of an earlier attempt before killing it.
LEFTOVER_WAIT = 15 * 60
# Lines kept for the failure diagnosis (kubeadm's error is at the end).
TAIL_LINES = 200
KUBEADM = "kubeadm"  # found on the machine's PATH, as an operator types it

# "abcdef.0123456789abcdef" anywhere, and a 64-hex certificate key after "key": masked even if
# Kubeboard did not hand them out itself (kubeadm may print one it generated).
_TOKEN = re.compile(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b")
_CERT_KEY = re.compile(r"(?i)(key[^0-9a-f\n]{0,40})\b[0-9a-f]{64}\b")


class Phase(Protocol):
    """What these helpers use of a running phase (``operations.runner.PhaseContext``)."""

    node: Any  # the machine's row; only its ``name`` is read here
    phase: Any  # the phase's row; only its ``name`` is read here
    attempt: int
    cancel_event: threading.Event
    exit_status: int | None

    @property
    def job(self) -> str: ...

    def log(self, message: str, level: str = ..., **data: Any) -> None: ...

    def output_line(self, line: str) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass
class Secrets:
    """Strings that must never reach an event, a log line or an error message."""

    values: set[str] = field(default_factory=set)

    def add(self, *values: str) -> None:
        self.values.update(value for value in values if value and len(value) >= 8)

    def redact(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, "***")
        text = _TOKEN.sub(lambda m: f"{m.group(1)}.****************", text)
        return _CERT_KEY.sub(lambda m: f"{m.group(1)}***", text)


def phase_error(exc: ssh.SSHError, node: Any) -> PhaseError:
    """An SSH failure as the phase's error, with the transport's hint (what to do next)."""
    message = str(exc)
    hint = exc.hint
    if isinstance(exc, ssh.HostKeyChanged):
        message = (
            f"the host key of {node.name} changed: Kubeboard pinned {exc.pinned_fingerprint}, the machine now "
            f"offers {exc.offered_fingerprint}; every operation on this machine stops until a person decides"
        )
        hint = hint or "if the machine was reinstalled, accept the new key on the node page, then resume"
    elif isinstance(exc, ssh.HostKeyUnknown):
        message = f"the host key of {node.name} ({exc.fingerprint}) has not been accepted yet"
        hint = hint or "compare the fingerprint on the node page with the machine's and accept it, then resume"
    return PhaseError(message, hint=hint)


def _no_machine(ctx: Phase) -> PhaseError:
    return PhaseError(f"phase {ctx.phase.name} has no machine (its node was deleted)", hint="start a new operation")


@contextmanager
def connection(ctx: Phase, open_connection: Callable[[], ssh.Connection]) -> Iterator[ssh.Connection]:
    """The phase's SSH connection to its node (``open_connection`` opens it: the node's owner
    knows its target); SSH trouble ends the phase with a hint."""
    node = ctx.node
    if node is None:
        raise _no_machine(ctx)
    try:
        with open_connection() as conn:
            yield conn
    except ssh.CommandCancelled:
        raise
    except ssh.SSHError as exc:
        _end_phase(ctx, exc, node)


def _end_phase(ctx: Phase, exc: ssh.SSHError, node) -> NoReturn:
    """SSH trouble ends the phase: as cancelled if a cancel was asked, else with its hint."""
    if ctx.cancel_event.is_set():
        raise OperationCancelled(str(exc)) from exc
    raise phase_error(exc, node) from None


def _wait_for_job(ctx: Phase, conn: ssh.Connection, job: str, *, what: str, poll: float) -> bool:
    """Wait (at most LEFTOVER_WAIT) for ``job`` to end on the machine; past that, stop it.
    True if it ended by itself."""
    try:
        wait_until(
            lambda: None if conn.job_running(job) else True,
            timeout=LEFTOVER_WAIT,
            interval=poll,
            cancel=ctx.cancel_event,
        )
    except WaitCancelled:
        conn.kill_job(job)
        raise OperationCancelled(f"cancelled while waiting for {what}") from None
    except WaitTimedOut:
        conn.kill_job(job)
        return False
    return True


def await_leftover(ctx: Phase, conn: ssh.Connection, job: str) -> None:
    """Before re-running a phase, make sure no earlier attempt's command still runs there."""
    if ctx.attempt <= 1:
        return
    pgid = conn.job_pgid(job)
    if pgid is None:
        return
    ctx.log(
        f"The command of an earlier attempt is still running on {ctx.node.name} (process group {pgid}); "
        "waiting for it to end before running the phase again, so it never runs twice at once.",
        level="warning",
        pgid=pgid,
    )
    if _wait_for_job(ctx, conn, job, what="an earlier attempt's command", poll=1.0):
        ctx.log("The earlier command has ended; running the phase again.")
    else:
        ctx.log(f"It was still running after {LEFTOVER_WAIT // 60} min; stopped it.", level="warning")


def diagnose(lines: list[str], exit_status: int | None, phase: str) -> tuple[str, str]:
    """(summary, hint) for a failed kubeadm command; kubeadm.diagnose holds the knowledge."""
    found = kubeadm_diagnose(lines, exit_status, phase=phase)
    if found is not None:
        return found.summary, found.hint
    parsed = [kubeadm_output.parse_line(line) for line in lines]
    checks = [f"{p.check}: {p.text}" for p in parsed if p.check and p.level == "error"]
    errors = [line.strip() for line, p in zip(lines, parsed, strict=True) if p.level == "error"]
    if checks:
        return "preflight checks failed: " + "; ".join(checks), (
            "fix what the failed checks name on the machine (or add the check to the ignore list if it does "
            "not matter there), then resume"
        )
    summary = errors[-1] if errors else (lines[-1].strip() if lines else "")
    if exit_status == 127:
        return summary or "kubeadm was not found", (
            "install kubeadm on the machine (on the PATH of the SSH user), then resume"
        )
    return summary, "read the phase's output above, fix the machine, then resume the operation"


class Output(NamedTuple):
    """What ``run`` returns: the exit status and the lines collected (none with ``on_line``)."""

    exit_status: int | None
    lines: list[str]


def run(
    ctx: Phase,
    conn: ssh.Connection,
    command: str | Iterable[str],
    *,
    label: str = "",
    secrets: Secrets | None = None,
    timeout: float = COMMAND_TIMEOUT,
    show: bool = True,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
) -> Output:
    """Run ``command`` (argv, or a shell line the user configured) as the phase's job.

    ``show``: stream each line as the phase's event (False keeps machine-readable output such as
    JSON or base64 out of the log); ``on_line`` instead of collecting, for long outputs consumed
    as they come (a snapshot in base64); ``check``: a non-zero exit fails the phase with kubeadm's
    diagnosis and a hint. The command line must not contain secrets (it is shown)."""
    secrets = secrets or Secrets()
    if isinstance(command, str):
        text, first = command, command.split()[0]
    else:
        argv = list(command)
        text, first = shlex.join(argv), argv[0]
    await_leftover(ctx, conn, ctx.job)
    ctx.log(f"$ {secrets.redact(text)}", command=secrets.redact(text))
    lines: list[str] = []
    tail: list[str] = []

    def collect(line: str) -> None:
        line = secrets.redact(line) if show else line
        if on_line is not None:
            on_line(line)
        else:
            lines.append(line)
        if show:
            tail.append(line)
            if len(tail) > TAIL_LINES:
                del tail[0]
            ctx.output_line(line)

    result = conn.run(text, on_line=collect, cancel=ctx.cancel_event, timeout=timeout, job=ctx.job)
    ctx.exit_status = result.exit_status
    if check and result.exit_status != 0:
        summary, hint = diagnose(tail or lines[-TAIL_LINES:], result.exit_status, ctx.phase.name)
        status = f"exit status {result.exit_status}" if result.exit_status is not None else f"signal {result.signal}"
        raise PhaseError(
            secrets.redact(
                f"{label or first} failed on {ctx.node.name} ({status})" + (f": {summary}" if summary else "")
            ),
            hint=secrets.redact(hint),
            exit_status=result.exit_status,
        )
    return Output(result.exit_status, lines)


def quiet(conn: ssh.Connection, command: str | Iterable[str], *, timeout: float = 60) -> Output:
    """A short read-only command outside any phase (a page's or a service's look at a machine)."""
    text = command if isinstance(command, str) else shlex.join(list(command))
    lines: list[str] = []
    result = conn.run(text, on_line=lines.append, timeout=timeout)
    return Output(result.exit_status, lines)


def run_reconnecting(
    ctx: Phase, open_connection: Callable[[], ssh.Connection], command: str | Iterable[str], *, label: str
) -> None:
    """``run`` on a connection of its own, surviving one broken connection.

    A connection that breaks while kubeadm runs leaves kubeadm running on the machine (its own
    process group). Once: reconnect, wait for that command to end, and run the phase again —
    kubeadm's upgrade, reset and certs phases are re-runnable; the job lock keeps two from
    overlapping."""
    node = ctx.node
    if node is None:
        raise _no_machine(ctx)
    for attempt in (1, 2):
        try:
            with open_connection() as conn:
                if attempt == 2:
                    _wait_for_job(ctx, conn, ctx.job, what="the interrupted command", poll=2.0)
                    ctx.log("The interrupted command has ended; running the phase again.")
                run(ctx, conn, command, label=label)
            return
        except ssh.Unreachable as exc:
            if attempt == 2 or ctx.cancel_event.is_set():
                raise phase_error(exc, node) from None
            ctx.log(
                f"The connection to {node.name} broke while {label} ran ({exc}); reconnecting and waiting for "
                "that command to end before running the phase again.",
                level="warning",
            )
        except ssh.CommandCancelled:
            raise
        except ssh.SSHError as exc:
            _end_phase(ctx, exc, node)


@dataclass(frozen=True)
class RemoteFile:
    path: str
    data: bytes = field(repr=False)
    mode: int = 0o600


def upload(ctx: Phase, conn: ssh.Connection, files: Iterable[RemoteFile]) -> None:
    """Write files atomically over SFTP and say which (never what: they may hold keys)."""
    for item in files:
        ctx.check_cancelled()
        try:
            conn.write_file(item.path, item.data, mode=item.mode)
        except ssh.SSHError as exc:
            raise phase_error(exc, ctx.node) from None
        ctx.log(
            f"Wrote {item.path} (mode {item.mode:04o}, {len(item.data)} bytes)", path=item.path, mode=f"{item.mode:04o}"
        )

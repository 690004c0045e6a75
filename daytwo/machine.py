"""Commands on a machine from a day-two phase, when Kubeboard needs what they print.

``clusters.remote.run`` streams a kubeadm command's output as the phase's events; ``capture``
does the same and also returns the lines (``show=False`` keeps machine-readable output such as
JSON or base64 out of the log). Both run as the phase's job, so a cancel stops the command on
the machine and a retry never overlaps a leftover of a crashed attempt.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable

from clusters import remote
from nodes.connect import connect
from operations.runner import OperationCancelled, PhaseContext, PhaseError
from remote import ssh

TAIL_LINES = 200
KUBEADM = "kubeadm"  # found on the machine's PATH, as an operator types it


def capture(
    ctx: PhaseContext,
    conn: ssh.Connection,
    command: str | Iterable[str],
    *,
    label: str = "",
    show: bool = True,
    timeout: float = remote.COMMAND_TIMEOUT,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
    secrets: remote.Secrets | None = None,
) -> tuple[int | None, list[str]]:
    """Run ``command`` (argv, or a shell line the user configured) and return (exit status, lines).

    ``on_line`` instead of collecting: for long outputs consumed as they come (a snapshot in
    base64). ``check``: a non-zero exit fails the phase with kubeadm's diagnosis and a hint."""
    secrets = secrets or remote.Secrets()
    text = command if isinstance(command, str) else shlex.join(list(command))
    remote.await_leftover(ctx, conn, ctx.job)
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
        shown = tail or lines[-TAIL_LINES:]
        summary, hint = remote.diagnose(shown, result.exit_status, ctx.phase.name)
        what = label or text.split()[0]
        status = f"exit status {result.exit_status}" if result.exit_status is not None else f"signal {result.signal}"
        raise PhaseError(
            secrets.redact(f"{what} failed on {ctx.node.name} ({status})" + (f": {summary}" if summary else "")),
            hint=secrets.redact(hint),
            exit_status=result.exit_status,
        )
    return result.exit_status, lines


def quiet(conn: ssh.Connection, command: str | Iterable[str], *, timeout: float = 60) -> tuple[int | None, list[str]]:
    """A short read-only command outside any phase (a page's or a service's look at a machine)."""
    text = command if isinstance(command, str) else shlex.join(list(command))
    lines: list[str] = []
    result = conn.run(text, on_line=lines.append, timeout=timeout)
    return result.exit_status, lines


# A connection that breaks while kubeadm runs leaves kubeadm running on the machine (its own
# process group). Once: reconnect, wait for that command to end, and run the phase again —
# kubeadm's upgrade, reset and certs phases are re-runnable; the job lock keeps two from overlapping.
RECONNECT_WAIT = 15 * 60


def run_kubeadm(ctx: PhaseContext, argv: list[str], *, label: str) -> None:
    """``clusters.remote.run`` of a kubeadm phase on ``ctx.node``, surviving one broken connection."""
    import time

    node = ctx.node
    for attempt in (1, 2):
        try:
            with connect(node) as conn:
                if attempt == 2:
                    deadline = time.monotonic() + RECONNECT_WAIT
                    while conn.job_running(ctx.job):
                        if ctx.cancel_event.wait(2.0):
                            conn.kill_job(ctx.job)
                            raise OperationCancelled("cancelled while waiting for the interrupted command")
                        if time.monotonic() > deadline:
                            conn.kill_job(ctx.job)
                            break
                    ctx.log("The interrupted command has ended; running the phase again.")
                remote.run(ctx, conn, argv, label=label)
            return
        except ssh.Unreachable as exc:
            if attempt == 2 or ctx.cancel_event.is_set():
                raise remote.phase_error(exc, node) from None
            ctx.log(
                f"The connection to {node.name} broke while {label} ran ({exc}); reconnecting and waiting for "
                "that command to end before running the phase again.",
                level="warning",
            )
        except ssh.CommandCancelled:
            raise
        except ssh.SSHError as exc:
            if ctx.cancel_event.is_set():
                raise OperationCancelled(str(exc)) from exc
            raise remote.phase_error(exc, node) from None

"""Running a command at a real terminal (a pseudo-terminal), for commands that read a password
with ``getpass`` from ``/dev/tty`` (``manage.py changepassword``): no patching, the command's
own prompts are answered as a person would type."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from tests.support.processes import ROOT

# Makes the pty the child's controlling terminal (getpass opens /dev/tty), then runs manage.py.
_WITH_TERMINAL = (
    "import fcntl, os, runpy, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run_manage_at_terminal(args: list[str], env: dict, answers: list[tuple[str, str]], timeout: float = 60) -> str:
    """Run ``manage.py <args>`` at a pseudo-terminal; for each (prompt, reply) wait for the prompt
    and type the reply. Returns everything the terminal showed; raises if the command fails."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", _WITH_TERMINAL, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    os.close(terminal)
    shown = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            if pending and pending[0][0].encode() in shown.rsplit(b"\n", 1)[-1]:
                prompt, reply = pending.pop(0)
                shown += b"\n"  # so the same prompt asked again is a new last line
                os.write(controller, reply.encode() + b"\n")
            if process.poll() is not None and not ready:
                break
        code = process.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    text = shown.decode(errors="replace")
    if code != 0 or pending:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({code}); unanswered {pending}:\n{text}")
    return text

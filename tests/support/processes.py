"""Kubeboard's own processes (daphne web server, django-q2 worker) started as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import cost
from tests.support.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def kubeboard_env(*, sqlite_path: str | None = None, database_url: str = "", redis_url: str = "", **extra: str) -> dict:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["PYTHONPATH"] = str(ROOT)
    if sqlite_path:
        env["KUBEBOARD_SQLITE_PATH"] = str(sqlite_path)
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env.pop("DATABASE_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    env.update(extra)
    return env


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Signal the main process only (qcluster stops its own children; signalling them
        too makes it hang), then kill whatever is left of the process group."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start(name: str, args: list[str], env: dict, log_dir: Path) -> Process:
    cost.require("services", f"starts a Kubeboard process ({name})")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    handle = open(log_path, "ab")
    popen = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    handle.close()
    return Process(name, popen, log_path)


def run_django(env: dict, code: str, timeout: float = 120) -> str:
    """Run ``code`` in a separate Django process configured by ``env`` (as a web process would
    be: its broker, its channel layer); returns what it printed."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py shell failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def start_worker(env: dict, log_dir: Path, name: str = "worker") -> Process:
    return start(name, ["manage.py", "qcluster"], env, log_dir)


def start_web(env: dict, log_dir: Path, port: int | None = None, name: str = "daphne") -> tuple[Process, str]:
    port = port or free_port()
    process = start(name, ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"], env, log_dir)
    if not wait_listening(process, port, timeout=30):
        process.stop()
        raise RuntimeError(f"daphne did not start:\n{process.log()}")
    return process, f"127.0.0.1:{port}"


def wait_listening(process: Process, port: int, timeout: float) -> bool:
    """True once ``port`` accepts connections; False if ``process`` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            return False
        try:
            wait_for_port(port, timeout=0.2)
            return True
        except TimeoutError:
            pass
    return False


@dataclass
class Stack:
    """A running web server and worker sharing one database (and Redis, if given)."""

    address: str
    web: Process
    workers: list[Process] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://{self.address}"

    @property
    def ws(self) -> str:
        return f"ws://{self.address}"

    def stop(self) -> None:
        for process in [self.web, *self.workers]:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()}" for p in [self.web, *self.workers])


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {message}")


def database_file_bytes(path: str) -> bytes:
    """The SQLite database file and its WAL as stored on disk, read by another process.

    Never open() a database file this process has SQLite connections to: closing any file
    descriptor of a file drops every POSIX lock the process holds on it, including SQLite's,
    so another process then checkpoints or resets the WAL under the still-open connections and
    the database ends up corrupt ("disk I/O error", "database disk image is malformed" in every
    later test). A child process's close does not touch this process's locks.
    """
    script = (
        "import os, sys\n"
        "for name in (sys.argv[1], sys.argv[1] + '-wal'):\n"
        "    if os.path.exists(name):\n"
        "        sys.stdout.buffer.write(open(name, 'rb').read())\n"
    )
    return subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, check=True).stdout

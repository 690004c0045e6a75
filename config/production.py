"""``bin/run --production``: check the configuration, migrate, collect static files, then run
N web processes (daphne) and M worker processes (django-q2 ``qcluster``) and keep them running.

Web process ``i`` (0-based) listens on ``KUBEBOARD_BIND:KUBEBOARD_PORT+i``; a reverse proxy
or load balancer in front spreads requests and websockets over them (README, "Production").
Any web process serves any user: sessions live in the database, live streams follow the
database and Redis, never process memory. A process that exits is restarted (with a growing
delay if it keeps failing); SIGTERM or Ctrl-C stops them all.

Environment (README has the full table): ``DATABASE_URL`` and ``REDIS_URL`` (required),
``KUBEBOARD_SECRET_KEY``, ``KUBEBOARD_ENCRYPTION_KEYS``, ``KUBEBOARD_AUDIT_KEYS`` and
``KUBEBOARD_AUDIT_SIGNING_KEY_FILE`` (required: every process on every machine must share them), ``KUBEBOARD_WEB_PROCESSES`` (default 2), ``KUBEBOARD_WORKER_PROCESSES``
(default 1), ``KUBEBOARD_WORKERS`` (worker processes inside each ``qcluster``, default 2),
``KUBEBOARD_BIND`` (default 127.0.0.1), ``KUBEBOARD_PORT`` (default 8000),
``KUBEBOARD_MIGRATE`` (default 1; set 0 on all machines but one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# A process that ran this long before exiting is restarted at once; quicker deaths back off.
HEALTHY_AFTER_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0

_output_lock = threading.Lock()


def say(message: str) -> None:
    with _output_lock:
        print(f"==> {message}", flush=True)


class ConfigurationError(Exception):
    """The environment cannot run production; the message says what to set."""


def _count(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass
class Plan:
    web_processes: int
    worker_processes: int
    bind: str
    port: int
    migrate: bool


def plan_from_environment() -> Plan:
    """Everything production needs from the environment, or one error naming what is missing."""
    missing = []
    if not os.environ.get("DATABASE_URL"):
        missing.append("DATABASE_URL (postgres://user:password@host:5432/kubeboard)")
    if not os.environ.get("REDIS_URL"):
        missing.append("REDIS_URL (redis://host:6379/0)")
    if not os.environ.get("KUBEBOARD_SECRET_KEY"):
        missing.append('KUBEBOARD_SECRET_KEY (e.g. python3 -c "import secrets; print(secrets.token_urlsafe(50))")')
    if not os.environ.get("KUBEBOARD_ENCRYPTION_KEYS"):
        missing.append(
            "KUBEBOARD_ENCRYPTION_KEYS (e.g. .venv/bin/python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"; '
            "reuse the key of an existing installation, or its stored secrets become unreadable)"
        )
    # Without these each machine would make its own audit keys in its data directory, and the
    # records and checkpoints one machine signs would not verify on another.
    if not os.environ.get("KUBEBOARD_AUDIT_KEYS"):
        missing.append(
            "KUBEBOARD_AUDIT_KEYS (e.g. .venv/bin/python -c "
            "\"import secrets; print('k1:' + secrets.token_urlsafe(32))\"; "
            "reuse the keys of an existing installation, or its audit records no longer verify)"
        )
    signing_key = os.environ.get("KUBEBOARD_AUDIT_SIGNING_KEY_FILE", "")
    if not signing_key:
        missing.append(
            "KUBEBOARD_AUDIT_SIGNING_KEY_FILE (the Ed25519 key that signs audit checkpoints, the same file on "
            "every machine; e.g. openssl genpkey -algorithm ed25519 -out /etc/kubeboard/audit-checkpoint.key)"
        )
    elif not Path(signing_key).is_file():
        missing.append(
            f"KUBEBOARD_AUDIT_SIGNING_KEY_FILE names {signing_key}, which does not exist (make it once with "
            f"openssl genpkey -algorithm ed25519 -out {signing_key}, then copy it to every machine)"
        )
    if missing:
        raise ConfigurationError(
            "production needs these settings, shared by every process on every machine:\n  " + "\n  ".join(missing)
        )
    if os.environ.get("KUBEBOARD_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise ConfigurationError("KUBEBOARD_DEBUG is on: never in production (it shows settings and tracebacks)")
    plan = Plan(
        web_processes=_count("KUBEBOARD_WEB_PROCESSES", 2),
        worker_processes=_count("KUBEBOARD_WORKER_PROCESSES", 1),
        bind=os.environ.get("KUBEBOARD_BIND", "127.0.0.1"),
        port=_count("KUBEBOARD_PORT", 8000, minimum=1),
        migrate=os.environ.get("KUBEBOARD_MIGRATE", "1").strip().lower() not in {"0", "false", "no", "off"},
    )
    _count("KUBEBOARD_WORKERS", 2, minimum=1)
    if plan.web_processes + plan.worker_processes == 0:
        raise ConfigurationError("KUBEBOARD_WEB_PROCESSES and KUBEBOARD_WORKER_PROCESSES are both 0: nothing to run")
    if plan.port + plan.web_processes - 1 > 65535:
        raise ConfigurationError(f"ports {plan.port}..{plan.port + plan.web_processes - 1} do not fit below 65536")
    return plan


def check_services() -> None:
    """The audit keys can be used, the database and Redis answer (clear messages instead of a
    traceback from migrate, or from the first audit record)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        import django

        django.setup()
    except Exception as exc:
        raise ConfigurationError(f"the settings cannot be loaded: {exc}") from None
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connections

    from audit import keys as audit_keys
    from core.health import database_problem, redis_problem

    try:
        audit_keys.keyring()
        audit_keys.checkpoint_key()
    except ImproperlyConfigured as exc:
        raise ConfigurationError(f"the audit keys cannot be used: {exc}") from None
    from audit.checkpoints import directory_problem

    # Without it every record would log an error and the trail could be cut off unnoticed.
    problem = directory_problem()
    if problem:
        raise ConfigurationError(problem)

    problems = [p for p in (database_problem(), redis_problem(settings.REDIS_URL)) if p]
    connections.close_all()
    if problems:
        raise ConfigurationError("; ".join(problems))


def manage(*args: str) -> None:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT)
    if result.returncode != 0:
        raise ConfigurationError(f"manage.py {' '.join(args)} failed (exit {result.returncode}); see above")


@dataclass
class Child:
    name: str
    args: list[str]
    # qcluster stops its own children; signalling them too makes it hang, so only the main
    # process gets SIGTERM. daphne has no children of its own.
    popen: subprocess.Popen | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    pumps: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started = time.monotonic()
        self.restart_at = None
        pump = threading.Thread(target=self._pump, args=(self.popen,), daemon=True)
        pump.start()
        self.pumps = [pump]
        say(
            f"{self.name} started (pid {self.popen.pid}): {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(self.args))}"
        )

    def _pump(self, popen: subprocess.Popen) -> None:
        # Prefix every line with the process name: N+M processes share one log.
        for raw in iter(popen.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with _output_lock:
                print(f"{self.name} | {line}", flush=True)
        popen.stdout.close()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.popen is not None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def children_for(plan: Plan) -> list[Child]:
    children = []
    for index in range(plan.web_processes):
        children.append(
            Child(
                f"web-{index + 1}",
                [
                    PYTHON,
                    "-m",
                    "daphne",
                    "-b",
                    plan.bind,
                    "-p",
                    str(plan.port + index),
                    # Clients only ever send small pings; anything large is garbage.
                    "--websocket-max-message-size",
                    "65536",
                    "config.asgi:application",
                ],
            )
        )
    for index in range(plan.worker_processes):
        children.append(Child(f"worker-{index + 1}", [PYTHON, "manage.py", "qcluster"]))
    return children


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = threading.Event()

    def request_stop(self, signum, frame) -> None:
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        for child in self.children:
            child.start()
        while not self.stopping.wait(0.2):
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.start()
                    continue
                code = child.popen.poll()
                if code is None:
                    continue
                lived = now - child.started
                child.failures = 0 if lived >= HEALTHY_AFTER_SECONDS else child.failures + 1
                delay = min(MAX_BACKOFF_SECONDS, 2 ** max(0, child.failures - 1)) if child.failures else 0.5
                say(
                    f"{child.name} (pid {child.popen.pid}) exited with {code} after {lived:.0f}s; restarting in {delay:.1f}s"
                )
                child.kill()  # leftovers of a killed qcluster (its worker processes) go with it
                child.restart_at = now + delay
        return self.shutdown()

    def shutdown(self) -> int:
        say("stopping every process")
        for child in self.children:
            child.stop()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in self.children:
            if child.popen is None:
                continue
            try:
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{child.name} did not stop within {STOP_TIMEOUT_SECONDS:.0f}s; killing it")
            child.kill()
        for child in self.children:
            for pump in child.pumps:
                pump.join(timeout=5)
        say("stopped")
        return 0


def main() -> int:
    os.chdir(ROOT)
    try:
        plan = plan_from_environment()
        say("checking the audit keys, the database and Redis")
        check_services()
        say("checking the deployment settings (manage.py check --deploy)")
        manage("check", "--deploy")
        if plan.migrate:
            say("migrating the database")
            manage("migrate", "--no-input")
            manage("ensure_admin")
        say("collecting static files")
        manage("collectstatic", "--no-input", "--verbosity", "0")
    except ConfigurationError as exc:
        print(f"Kubeboard production start refused: {exc}", file=sys.stderr)
        return 2
    children = children_for(plan)
    if plan.web_processes:
        last = plan.port + plan.web_processes - 1
        ports = str(plan.port) if plan.web_processes == 1 else f"{plan.port}-{last}"
        say(f"{plan.web_processes} web process(es) on {plan.bind}:{ports}, {plan.worker_processes} worker process(es)")
    else:
        say(f"no web process, {plan.worker_processes} worker process(es)")
    return Supervisor(children).run()


if __name__ == "__main__":
    sys.exit(main())

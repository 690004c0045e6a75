"""Production start and its bad input, with real processes: ``bin/run --production`` against a
real PostgreSQL and Redis, a web process refusing a wrong ``REDIS_URL``, workers that lose
Redis or the database saying so while ``/readyz`` turns red."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import require_or_skip
from tests.support import processes
from tests.support.processes import wait_until
from tests.support.services import ServiceUnavailable, free_port, start_postgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
FERNET_KEY = "q0Wc6bVn2E5p2m6m5B0b1Qm0bqYyqgq7w0yqv8cB3mE="
AUDIT_KEYS = "k1:production-test-audit-key-" + "y" * 32


@pytest.fixture
def own_postgres():
    # Not under pytest's tmp_path: its parents are private to root, and initdb runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="kubeboard-test-pg-"))
    directory.chmod(0o755)
    try:
        service = start_postgres(directory / "pg")
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield service
    service.stop()
    shutil.rmtree(directory, ignore_errors=True)


def wait_exit(process: processes.Process, timeout: float) -> int:
    try:
        return process.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        process.stop()
        raise AssertionError(f"{process.name} kept running:\n{process.log()[-3000:]}") from None


@pytest.mark.parametrize(
    "redis_url, says",
    [
        ("redis://127.0.0.1:{port}/0", "does not answer"),
        ("http://127.0.0.1:{port}/", "is not a valid Redis URL"),
    ],
    ids=["nobody-listens", "not-a-redis-url"],
)
@pytest.mark.services
def test_web_process_with_a_wrong_redis_url_refuses_to_start(tmp_path, redis_url, says):
    url = redis_url.format(port=free_port())
    env = processes.kubeboard_env(
        sqlite_path=str(tmp_path / "db.sqlite3"), redis_url=url, KUBEBOARD_REDIS_STARTUP_WAIT_SECONDS="1"
    )
    port = free_port()
    web = processes.start(
        "daphne", ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"], env, tmp_path
    )
    assert wait_exit(web, 60) != 0
    log = web.log()
    assert "Kubeboard web process not started" in log and says in log and "REDIS_URL" in log, log[-2000:]
    assert "Traceback" not in log, "a clear message, not a traceback"
    assert "Listening on" not in log


def test_worker_that_loses_redis_says_so_and_readiness_turns_red(stack_factory, own_redis, tmp_path):
    from core.models import WorkerHeartbeat

    stack = stack_factory(
        redis_url=own_redis.url,
        KUBEBOARD_WORKER_HEARTBEAT_SECONDS="0.5",
        KUBEBOARD_WORKER_HEARTBEAT_STALE_SECONDS="3",
    )
    wait_until(
        lambda: requests.get(f"{stack.http}/readyz", timeout=10).status_code == 200,
        timeout=60,
        message="readiness with a worker heartbeat",
    )
    workers = set(WorkerHeartbeat.objects.values_list("worker", flat=True))
    assert workers

    own_redis.stop()
    try:
        wait_until(
            lambda: "cannot run operations" in stack.workers[0].log(),
            timeout=30,
            message="the worker to say it lost Redis",
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; its log ends:\n{stack.workers[0].log()[-4000:]}") from None
    line = next(line for line in stack.workers[0].log().splitlines() if "cannot run operations" in line)
    assert "Redis at redis://127.0.0.1:" in line and "does not answer" in line and "heartbeat stops" in line
    seen = dict(WorkerHeartbeat.objects.filter(worker__in=workers).values_list("worker", "seen_at"))
    time.sleep(2)
    assert dict(WorkerHeartbeat.objects.filter(worker__in=workers).values_list("worker", "seen_at")) == seen, (
        "no heartbeat while Redis is gone"
    )
    responses = []

    def heartbeats_missed() -> bool:
        responses.append(requests.get(f"{stack.http}/readyz", timeout=20))
        return responses[-1].json()["checks"]["workers"].startswith("no ")

    wait_until(heartbeats_missed, timeout=20, message="readiness to notice the missing heartbeats")
    assert responses[-1].status_code == 503
    checks = responses[-1].json()["checks"]
    assert "does not answer" in checks["redis"]
    assert checks["workers"].startswith("no worker heartbeat in the last 3")


def test_worker_that_loses_the_database_says_so(own_postgres, tmp_path):
    url = own_postgres.url
    env = processes.kubeboard_env(
        database_url=url, KUBEBOARD_WORKER_HEARTBEAT_SECONDS="0.5", KUBEBOARD_DATA_DIR=str(tmp_path / "data")
    )
    migrate = subprocess.run(
        [processes.sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-3000:]
    worker = processes.start_worker(env, tmp_path / "logs")
    try:
        import psycopg

        def beats() -> int:
            with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
                return conn.execute("SELECT count(*) FROM core_workerheartbeat").fetchone()[0]

        wait_until(lambda: beats() > 0, timeout=60, message="a heartbeat row")
        subprocess.run(own_postgres.stop_command, capture_output=True, timeout=60)
        wait_until(
            lambda: "the database does not answer" in worker.log(),
            timeout=60,
            message="the worker to say it lost the database",
        )
        line = next(line for line in worker.log().splitlines() if "the database does not answer" in line)
        assert "cannot run operations" in line and "heartbeat stops" in line
    finally:
        worker.stop()


def two_free_ports() -> int:
    """A port whose next one is free too (web processes listen on consecutive ports)."""
    import socket

    for _ in range(50):
        base = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no two consecutive free ports")


def production_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEBOARD_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(KUBEBOARD_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def test_production_start_refuses_without_its_settings(tmp_path):
    result = subprocess.run(
        [str(ROOT / "bin" / "run"), "--production"],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "KUBEBOARD_SECRET_KEY",
        "KUBEBOARD_ENCRYPTION_KEYS",
        "KUBEBOARD_AUDIT_KEYS",
        "KUBEBOARD_AUDIT_SIGNING_KEY_FILE",
    ):
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").glob("audit-*.key")), "no key was made"


def checkpoint_key_file(path: Path) -> Path:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


@pytest.mark.parametrize(
    "audit, says",
    [
        ({"KUBEBOARD_AUDIT_SIGNING_KEY_FILE": "{tmp}/nowhere.key"}, "nowhere.key, which does not exist"),
        ({"KUBEBOARD_AUDIT_KEYS": "k1:short"}, "audit key #1 is malformed"),
        ({"KUBEBOARD_AUDIT_SIGNING_KEY_FILE": "{tmp}/not-a-key.pem"}, "does not hold a PEM private key"),
        ({"KUBEBOARD_AUDIT_CHECKPOINT_DIR": "{tmp}/not-a-key.pem/checkpoints"}, "checkpoint directory"),
    ],
    ids=["signing-key-file-missing", "audit-key-malformed", "signing-key-not-a-key", "checkpoint-dir-unusable"],
)
def test_production_start_refuses_audit_keys_it_cannot_use(tmp_path, audit, says):
    (tmp_path / "not-a-key.pem").write_text("hello\n")
    settings = {
        "DATABASE_URL": "postgres://kubeboard:secret@127.0.0.1:1/kubeboard",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "KUBEBOARD_SECRET_KEY": "production-test-secret-key-" + "x" * 40,
        "KUBEBOARD_ENCRYPTION_KEYS": FERNET_KEY,
        "KUBEBOARD_AUDIT_KEYS": AUDIT_KEYS,
        "KUBEBOARD_AUDIT_SIGNING_KEY_FILE": str(checkpoint_key_file(tmp_path / "audit-checkpoint.key")),
    } | {name: value.format(tmp=tmp_path) for name, value in audit.items()}
    result = subprocess.run(
        [sys.executable, "-m", "config.production"],
        cwd=ROOT,
        env=production_env(tmp_path, **settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Kubeboard production start refused" in result.stderr and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "k1:short" not in result.stderr, "a key is never printed"


def test_production_start_runs_web_and_worker_processes_behind_one_database(own_postgres, own_redis, tmp_path):
    base = two_free_ports()
    env = production_env(
        tmp_path,
        DATABASE_URL=own_postgres.url,
        REDIS_URL=own_redis.url,
        KUBEBOARD_SECRET_KEY="production-test-secret-key-" + "x" * 40,
        KUBEBOARD_ENCRYPTION_KEYS=FERNET_KEY,
        KUBEBOARD_AUDIT_KEYS=AUDIT_KEYS,
        KUBEBOARD_AUDIT_SIGNING_KEY_FILE=str(checkpoint_key_file(tmp_path / "audit-checkpoint.key")),
        KUBEBOARD_WEB_PROCESSES="2",
        KUBEBOARD_WORKER_PROCESSES="2",
        KUBEBOARD_WORKERS="1",
        KUBEBOARD_PORT=str(base),
        KUBEBOARD_WORKER_HEARTBEAT_SECONDS="1",
    )
    log_path = tmp_path / "production.log"
    with open(log_path, "wb") as log:
        launcher = subprocess.Popen(
            [str(ROOT / "bin" / "run"), "--production"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    webs = [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"]
    try:

        def ready() -> bool:
            try:
                return all(requests.get(f"{web}/readyz", timeout=5).status_code == 200 for web in webs)
            except requests.ConnectionError:
                assert launcher.poll() is None, log_path.read_text()[-4000:]
                return False

        wait_until(ready, timeout=240, interval=1, message="both web processes ready")
        output = log_path.read_text()
        assert "web-1 started" in output and "web-2 started" in output
        assert output.count("worker-") >= 2
        password = re.search(r"password: (\S+)", output).group(1)

        # Static files are collected and served by the web processes themselves.
        for web in webs:
            css = requests.get(f"{web}/static/kubeboard/kubeboard.css", timeout=10)
            assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]
            assert requests.get(f"{web}/static/%2e%2e/config/settings.py", timeout=10).status_code == 404
        assert (tmp_path / "data" / "staticfiles" / "kubeboard" / "kubeboard.css").exists()

        # A session made on one web process works on the other (database sessions, one secret key).
        session = requests.Session()
        page = session.get(f"{webs[0]}/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        login = session.post(
            f"{webs[0]}/login/",
            data={"username": "admin", "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{webs[0]}/login/"},
            timeout=10,
        )
        assert login.status_code == 200 and "/login/" not in login.url
        other = session.get(f"{webs[1]}/clusters/", timeout=10, allow_redirects=False)
        assert other.status_code == 200

        # A web process that dies is started again.
        pid = int(re.search(r"web-2 started \(pid (\d+)\)", output).group(1))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: log_path.read_text().count("web-2 started") == 2, timeout=60, message="web-2 restarted")
        wait_until(ready, timeout=120, interval=1, message="both web processes ready again")
    finally:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            raise AssertionError("bin/run --production did not stop on SIGTERM") from None
    assert launcher.returncode == 0
    output = log_path.read_text()
    assert "stopped" in output
    pids = [int(p) for p in re.findall(r"started \(pid (\d+)\)", output)]
    leftovers = [
        p for p in pids if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]
    ]
    assert not leftovers, f"processes left running: {leftovers}"
    for web in webs:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{web}/healthz", timeout=2)

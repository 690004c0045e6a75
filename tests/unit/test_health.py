"""/healthz and /readyz as a load balancer sees them, and the worker heartbeat behind /readyz."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.health import masked_url, redis_problem
from core.heartbeat import HeartbeatWriter
from core.models import WorkerHeartbeat
from tests.support.services import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_heartbeats_from_other_tests():
    """Real worker processes of earlier tests in the same session may have written heartbeats
    into the test database; these tests decide which workers exist (rolled back afterwards)."""
    WorkerHeartbeat.objects.all().delete()


def heartbeat(age_seconds: float, worker: str = "host:1") -> None:
    seen = timezone.now() - timedelta(seconds=age_seconds)
    WorkerHeartbeat.objects.update_or_create(
        worker=worker, defaults={"host": "host", "pid": 1, "started_at": seen, "seen_at": seen}
    )


def test_liveness_touches_no_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "alive"}


def test_not_ready_without_a_worker(client, settings):
    settings.REDIS_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == "ok"
    assert "no worker ever reported" in body["checks"]["workers"] and "qcluster" in body["checks"]["workers"]


def test_ready_with_a_fresh_heartbeat_and_not_with_a_stale_one(client, settings):
    settings.REDIS_URL = ""
    settings.WORKER_HEARTBEAT_STALE_SECONDS = 20
    heartbeat(3)
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["workers"].startswith("1 worker process(es) alive")

    heartbeat(45)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "last heartbeat 45s ago" in response.json()["checks"]["workers"]


def test_unreachable_redis_makes_it_not_ready_and_the_password_stays_hidden(client, settings):
    settings.REDIS_URL = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    heartbeat(1)
    response = client.get("/readyz")
    assert response.status_code == 503
    redis = response.json()["checks"]["redis"]
    assert "does not answer" in redis and "127.0.0.1" in redis
    assert "hunter2secret" not in response.content.decode()


def test_ready_with_redis_answering(client, settings, redis_server):
    settings.REDIS_URL = redis_server
    heartbeat(1)
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["redis"] == "ok"


def test_health_endpoints_are_not_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/clusters/").status_code == 301


def test_masked_url_hides_only_the_password():
    assert masked_url("redis://user:pw@h:6379/0") == "redis://user:***@h:6379/0"
    assert masked_url("redis://h:6379/0") == "redis://h:6379/0"
    assert "not a valid" in redis_problem("http://example.com/")


def test_heartbeat_is_written_only_while_redis_answers(settings, redis_server, caplog):
    writer = HeartbeatWriter("host:42")
    settings.REDIS_URL = redis_server
    assert writer.beat()
    first = WorkerHeartbeat.objects.get(worker="host:42").seen_at

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    assert not writer.beat()
    assert not writer.beat()
    assert WorkerHeartbeat.objects.get(worker="host:42").seen_at == first
    complaints = [r for r in caplog.records if "cannot run operations" in r.getMessage()]
    assert len(complaints) == 1, "said once, not at every beat"
    assert "does not answer" in complaints[0].getMessage() and "heartbeat stops" in complaints[0].getMessage()

    settings.REDIS_URL = redis_server
    assert writer.beat()
    assert WorkerHeartbeat.objects.get(worker="host:42").seen_at > first
    assert any("heartbeat resumed" in r.getMessage() for r in caplog.records)


def test_a_task_run_in_the_callers_process_starts_no_worker_threads():
    """``sync=True`` runs the task here, through django-q2's worker function: this process is no
    worker, so no heartbeat claims one and no reaper interrupts other workers' operations."""
    import threading

    from django_q.tasks import async_task

    async_task("audit.services.record", "task.inline", sync=True)
    running = {thread.name for thread in threading.enumerate()}
    assert not running & {"heartbeat", "reaper"}, running
    assert not WorkerHeartbeat.objects.exists()

"""Kubeboard as it runs for real: daphne and django-q2 worker processes, a real websocket client.

The test process only shares the database with them; every request goes over HTTP or a
websocket, and every operation runs in a separate ``manage.py qcluster`` process.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
import websockets

from clusters.models import Cluster
from operations.models import Event, Operation, PhaseRun
from tests.conftest import session_cookie, team_of
from tests.factories import CLUSTER_FORM
from tests.support.processes import database_file_bytes, wait_until
from tests.support.web import collect, logged_in_session, post_form

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FORM = dict(CLUSTER_FORM, encryption_algorithm="ECDSA-P256")


def create_through_the_browser_form(stack, operator, name: str, **changes) -> tuple[Operation, str]:
    key = session_cookie(operator)
    session = logged_in_session(stack.http, key)
    data = dict(FORM, name=name, team=team_of(operator).pk, **changes)
    response = post_form(session, f"{stack.http}/clusters/new/", data)
    assert response.status_code == 200, response.text[:2000]
    operation = Operation.objects.get(cluster__name=name)
    assert response.url.endswith(f"/operations/{operation.pk}/")
    return operation, key


def assert_complete_in_order(events: list[dict], operation: Operation) -> None:
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1)), "every event exactly once, in order"
    stored = list(Event.objects.filter(operation=operation).order_by("seq").values_list("seq", "message"))
    assert [(e["seq"], e["message"]) for e in events] == stored


def run_identity_end_to_end(stack, operator, name: str) -> None:
    operation, key = create_through_the_browser_form(stack, operator, name)
    events = collect(stack.ws, operation.pk, key)
    operation.refresh_from_db()
    assert operation.status == Operation.Status.SUCCEEDED, stack.logs()
    assert_complete_in_order(events, operation)
    phase_states = [(e["phase"], e["data"]["status"]) for e in events if e["kind"] == "phase"]
    assert phase_states == [
        (phase, status)
        for phase in ("validate-config", "certificate-authorities", "ca-pin", "render-config")
        for status in ("running", "succeeded")
    ]
    assert operation.worker and not operation.worker.startswith("vm-test")
    cluster = Cluster.objects.get(name=name)
    assert cluster.status == Cluster.Status.READY and cluster.ca_pin_hash.startswith("sha256:")

    # Reconnecting with the last sequence number seen gets exactly what was missed: nothing here.
    middle = events[len(events) // 2]["seq"]
    replay = collect(
        stack.ws, operation.pk, key, after=middle, until=lambda got: got and got[-1]["seq"] == events[-1]["seq"]
    )
    assert [e["seq"] for e in replay] == list(range(middle + 1, events[-1]["seq"] + 1))

    # The cluster page shows what the user came for.
    page = logged_in_session(stack.http, key).get(f"{stack.http}/clusters/{name}/", timeout=30).text
    assert cluster.ca_pin_hash in page
    assert "kind: ClusterConfiguration" in page
    assert cluster.authorities.get(name="ca").fingerprint_sha256 in page


def test_embedded_mode_without_redis(stack_factory, operator):
    stack = stack_factory()
    run_identity_end_to_end(stack, operator, "embedded")


def test_redis_carries_live_events_across_processes(stack_factory, operator, redis_server):
    # The database safety poll is switched off, so only the channel layer can deliver live.
    stack = stack_factory(redis_url=redis_server, KUBEBOARD_EVENT_SAFETY_POLL_SECONDS="3600")
    operation, key = create_through_the_browser_form(stack, operator, "with-redis")

    async def watch() -> list[dict]:
        from tests.support.web import collect_events

        return await collect_events(stack.ws, operation.pk, key)

    events = asyncio.run(watch())
    operation.refresh_from_db()
    assert operation.status == Operation.Status.SUCCEEDED, stack.logs()
    assert_complete_in_order(events, operation)


def test_refuses_anonymous_and_foreign_origin(stack_factory, operator):
    stack = stack_factory()
    operation, key = create_through_the_browser_form(stack, operator, "guarded")

    async def attempt(headers: dict, origin: str) -> int:
        try:
            async with websockets.connect(
                f"{stack.ws}/ws/operations/{operation.pk}/", additional_headers=headers, origin=origin
            ) as socket:
                while True:
                    await socket.recv()
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else -1
        return 0

    own = f"http://{stack.address}"
    # Anonymous: accepted, then closed with a code the page can read (a close before accepting
    # would reach the browser as a bare HTTP 403, and the page would retry forever).
    assert asyncio.run(attempt({}, own)) == 4401
    # Another site's page: refused at the handshake, it learns nothing.
    assert asyncio.run(attempt({"Cookie": f"sessionid={key}"}, "http://evil.example")) == 403


def test_worker_killed_mid_phase_is_reaped_and_resumable(stack_factory, operator, make_user):
    stack = stack_factory()
    # RSA-4096 keys take seconds each: long enough to kill the worker inside the phase.
    operation, key = create_through_the_browser_form(stack, operator, "crashy", encryption_algorithm="RSA-4096")
    wait_until(
        lambda: PhaseRun.objects.filter(operation=operation, name="certificate-authorities", status="running").exists(),
        timeout=60,
        message="the certificate-authorities phase to start",
    )
    stack.workers[0].stop(signal.SIGKILL)
    operation.refresh_from_db()
    assert operation.status == Operation.Status.RUNNING  # the row still says running: the worker had no chance

    from tests.conftest import test_database_env
    from tests.support import processes

    # A new worker reaps it at start-up: the old pid is gone on this host.
    env = processes.kubeboard_env(**test_database_env())
    stack.workers.append(processes.start_worker(env, stack.workers[0].log_path.parent, name="worker-restarted"))
    wait_until(
        lambda: Operation.objects.get(pk=operation.pk).status == Operation.Status.INTERRUPTED,
        timeout=60,
        message="the restarted worker to reap the orphan",
    )
    operation.refresh_from_db()
    assert "is gone" in operation.error and "certificate-authorities" in operation.error
    assert operation.phases.get(name="certificate-authorities").status == PhaseRun.Status.FAILED

    # The user resumes from the page; the operation finishes and no event is repeated.
    session = logged_in_session(stack.http, key)
    page = session.get(f"{stack.http}/operations/{operation.pk}/", timeout=30).text
    assert "Resume from the failed phase" in page
    import re

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    session.post(
        f"{stack.http}/operations/{operation.pk}/resume/",
        data={"csrfmiddlewaretoken": token},
        headers={"Referer": stack.http},
        timeout=30,
    )
    wait_until(
        lambda: Operation.objects.get(pk=operation.pk).status == Operation.Status.SUCCEEDED,
        timeout=120,
        message="the resumed operation to succeed",
    )
    seqs = list(Event.objects.filter(operation=operation).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert Cluster.objects.get(name="crashy").authorities.count() == 4


def test_secrets_never_reach_logs_or_the_database_in_plaintext(stack_factory, operator):
    from django.db import connection

    stack = stack_factory(KUBEBOARD_LOG_LEVEL="DEBUG")
    operation, key = create_through_the_browser_form(stack, operator, "secretive")
    collect(stack.ws, operation.pk, key)
    stack.stop()
    logs = stack.logs()
    assert "ready for work" in logs and "Listening on TCP address" in logs, (
        f"both processes should have logged:\n{logs[-3000:]}"
    )
    events = " ".join(Event.objects.filter(operation=operation).values_list("message", flat=True))
    database = database_file_bytes(connection.settings_dict["NAME"])
    for authority in Cluster.objects.get(name="secretive").authorities.all():
        pem = authority.private_key.reveal()
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        for chunk in (body[:40], body[len(body) // 2 : len(body) // 2 + 40]):
            assert chunk not in logs, f"{authority.name} key material in the process logs"
            assert chunk not in events, f"{authority.name} key material in the event log"
            assert chunk.encode() not in database, f"{authority.name} key material in the database file"

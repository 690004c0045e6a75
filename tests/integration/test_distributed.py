"""The distributed setup as it runs for real: PostgreSQL, Redis, two daphne web processes and
two qcluster workers on loopback, six operations on three clusters at once, websocket clients
spread over both web processes. Mid-run one worker process is killed and one web process is
restarted. Every client must end with every event of its operation exactly once and in order,
one cluster's operations must never overlap, and the killed operation must end interrupted
and then succeed when resumed.

Runs in the PostgreSQL pass of bin/test (``-m postgres`` with DATABASE_URL); the claim that
serializes a cluster's operations is checked across processes on PostgreSQL's row locks.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests
import websockets
from django.contrib.auth.models import Group
from django.db import connection

from core.models import TeamMembership
from operations.models import Event, Operation, PhaseAttempt
from tests.conftest import require_or_skip, session_cookie, team_of
from tests.conftest import test_database_env as database_env
from tests.factories import make_cluster
from tests.support import processes
from tests.support.processes import wait_until
from tests.support.services import free_port, redis_argv, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(600)]

FINAL = "succeeded"
LINES_PER_PHASE = 120


@dataclass
class Client:
    """A browser tab following one operation: reconnects with ``after`` to the other web process
    when its connection ends, as operation.js does (minus the waiting)."""

    name: str
    operation_id: int
    addresses: list[str]
    cookie: str
    events: list[dict] = field(default_factory=list)
    # (address, first seq received there) for every connection that delivered something
    connections: list[tuple[str, int]] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    last_seq: int | None = None  # done at this sequence number (default: the final status event)

    def finished(self) -> bool:
        if self.last_seq is not None:
            return bool(self.events) and self.events[-1]["seq"] >= self.last_seq
        return any(e["kind"] == "status" and e["data"].get("status") == FINAL for e in self.events)

    async def follow(self, deadline: float) -> None:
        index = 0
        while not self.finished():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no final status after {len(self.events)} events")
            address = self.addresses[index % len(self.addresses)]
            after = self.events[-1]["seq"] if self.events else 0
            try:
                async with websockets.connect(
                    f"ws://{address}/ws/operations/{self.operation_id}/?after={after}",
                    additional_headers={"Cookie": f"sessionid={self.cookie}"},
                    origin=f"http://{address}",
                    open_timeout=5,
                ) as socket:
                    first = True
                    async for raw in socket:
                        message = json.loads(raw)
                        if message["type"] == "refused":
                            self.refused.append(message)
                            return
                        if message["type"] == "events" and message["events"]:
                            if first:
                                self.connections.append((address, message["events"][0]["seq"]))
                                first = False
                            self.events.extend(message["events"])
                            if self.finished():
                                return
            except (OSError, websockets.ConnectionClosed, websockets.InvalidStatus, TimeoutError):
                pass
            index += 1  # the other web process next
            await asyncio.sleep(0.2)


class ClientRunner(threading.Thread):
    """Runs clients in an event loop of its own while the test thread kills and restarts."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.loop = asyncio.new_event_loop()
        self.futures = []

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def add(self, client: Client, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        self.futures.append(asyncio.run_coroutine_threadsafe(client.follow(deadline), self.loop))

    def wait(self, timeout: float) -> None:
        for future in self.futures:
            future.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)


def wait_ready(address: str, started: list[processes.Process], timeout: float = 90) -> None:
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = requests.get(f"http://{address}/readyz", timeout=10)
        if last.status_code == 200:
            return
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name}\n{p.log()[-2000:]}" for p in started)
    raise AssertionError(f"{address} not ready: {last.text if last is not None else ''}\n{logs}")


def run_intervals(operation: Operation) -> list[tuple[float, float, str]]:
    """(start, end, outcome) of each run of an operation, from its stored status events: a run
    starts with the runner's "running" event and ends with the next final one (the reaper
    writes "interrupted" for a killed worker, later than the death: the interval only grows)."""
    runs, start = [], None
    for event in Event.objects.filter(operation=operation, kind="status").order_by("seq"):
        status = event.data.get("status")
        if status == "running":
            assert start is None, f"operation {operation.pk} started twice without ending"
            start = event.created.timestamp()
        elif status in {"succeeded", "failed", "interrupted", "cancelled"} and start is not None:
            runs.append((start, event.created.timestamp(), status))
            start = None
    assert start is None, f"operation {operation.pk} has a run that never ended"
    return runs


def test_two_web_and_two_worker_processes_lose_no_event(transactional_db, own_redis, operator, make_user, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL pass (bin/test sets DATABASE_URL); the claim is tested on row locks")
    env = processes.kubeboard_env(
        redis_url=own_redis.url,
        **database_env(),
        KUBEBOARD_OPERATION_KIND_MODULES="tests.support.kinds",
        KUBEBOARD_WORKERS="6",
    )
    logs = tmp_path / "logs"
    viewer = make_user("vera", role="viewer")
    team = Group.objects.get(name="platform")
    assert TeamMembership.objects.filter(team=team, user=viewer).exists()
    clusters = [make_cluster(f"dist-{index}", team=team) for index in range(3)]
    cookies = [session_cookie(operator), session_cookie(viewer)]

    web_a, address_a = processes.start_web(env, logs, name="web-a")
    web_b, address_b = processes.start_web(env, logs, name="web-b")
    port_b = int(address_b.rsplit(":", 1)[1])
    workers = [processes.start_worker(env, logs, name=f"worker-{n}") for n in (1, 2)]
    started = [web_a, web_b, *workers]
    runner = ClientRunner()
    try:
        for address in (address_a, address_b):
            wait_ready(address, started)

        lines = {
            phase: [f"{phase} output line {n}" for n in range(LINES_PER_PHASE)]
            for phase in ("prepare", "work", "finish")
        }
        normal = {"sleep": 1.5, "lines": lines}
        # The first operation of cluster 0 blocks in its (not idempotent) work phase: the victim.
        victim = {**normal, "block": {"work": 1}, "ignore_cancel": True, "block_seconds": 120}
        start_code = (
            "import json, time\n"
            "from django.contrib.auth.models import User\n"
            "from clusters.models import Cluster\n"
            "from operations.models import Operation\n"
            "from operations.services import start_operation\n"
            f"user = User.objects.get(pk={operator.pk})\n"
            "def start(name, params):\n"
            "    return start_operation(Cluster.objects.get(name=name), 'test-steps', user=user, params=params).pk\n"
            f"ids = [start('dist-0', {victim!r})]\n"
            "deadline = time.monotonic() + 60\n"
            "while Operation.objects.get(pk=ids[0]).status != 'running' and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\n"
            f"ids += [start('dist-0', {normal!r})]\n"
            f"ids += [start(name, {normal!r}) for name in ('dist-1', 'dist-2', 'dist-1', 'dist-2')]\n"
            "print(json.dumps(ids))\n"
        )
        ids = json.loads(processes.run_django(env, start_code).strip().splitlines()[-1])
        victim_id = ids[0]

        runner.start()
        clients = []
        for position, operation_id in enumerate(ids):
            for copy in range(2):
                first = [address_a, address_b] if (position + copy) % 2 == 0 else [address_b, address_a]
                client = Client(f"op{operation_id}-{copy}", operation_id, first, cookies[copy])
                clients.append(client)
                runner.add(client)

        # Kill the worker process that runs the victim's work phase.
        wait_until(
            lambda: PhaseAttempt.objects.filter(
                phase__operation_id=victim_id, phase__name="work", status="running"
            ).exists(),
            timeout=120,
            message="the victim's work phase to run",
        )
        worker_identity = Operation.objects.get(pk=victim_id).worker
        victim_pid = int(worker_identity.rsplit(":", 1)[1])
        os.kill(victim_pid, signal.SIGKILL)

        # Restart web process B while operations run; its clients move to A and back.
        time.sleep(1.0)
        web_b.stop()
        time.sleep(2.0)
        web_b, _ = processes.start_web(env, logs, port=port_b, name="web-b-restarted")
        started.append(web_b)
        # Tabs opened on the restarted process replay everything from the database.
        for operation_id in ids:
            late = Client(f"op{operation_id}-late", operation_id, [address_b, address_a], cookies[0])
            clients.append(late)
            runner.add(late)

        wait_until(
            lambda: Operation.objects.get(pk=victim_id).status == Operation.Status.INTERRUPTED,
            timeout=120,
            message="the killed worker's operation to be reaped",
        )
        victim_op = Operation.objects.get(pk=victim_id)
        assert "is gone" in victim_op.error and str(victim_pid) in victim_op.error

        # The user resumes it from the page (through web process B, restarted meanwhile).
        session = requests.Session()
        session.cookies.set("sessionid", cookies[0], domain="127.0.0.1")
        page = session.get(f"http://{address_b}/operations/{victim_id}/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        resumed = session.post(
            f"http://{address_b}/operations/{victim_id}/resume/",
            data={"csrfmiddlewaretoken": token},
            headers={"Referer": f"http://{address_b}/"},
            timeout=30,
        )
        assert resumed.status_code == 200, resumed.text[:2000]

        runner.wait(timeout=400)
    finally:
        for process in started:
            process.stop()
    logs_text = "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in started)

    # Every operation ended well; the victim went interrupted -> resumed -> succeeded.
    for operation in Operation.objects.filter(pk__in=ids):
        assert operation.status == Operation.Status.SUCCEEDED, (operation.pk, operation.error, logs_text)
    victim_runs = run_intervals(Operation.objects.get(pk=victim_id))
    assert [outcome for _, _, outcome in victim_runs] == ["interrupted", "succeeded"]
    work_attempts = list(
        PhaseAttempt.objects.filter(phase__operation_id=victim_id, phase__name="work")
        .order_by("number")
        .values_list("status", "worker")
    )
    assert [status for status, _ in work_attempts] == ["interrupted", "succeeded"]
    assert work_attempts[0][1] == worker_identity

    # Every client: every event of its operation exactly once, in order, as stored.
    for client in clients:
        assert not client.refused, (client.name, client.refused)
        stored = list(
            Event.objects.filter(operation_id=client.operation_id).order_by("seq").values_list("seq", "message")
        )
        assert [e["seq"] for e in client.events] == list(range(1, len(stored) + 1)), client.name
        assert [(e["seq"], e["message"]) for e in client.events] == stored, client.name
    assert all(len(client.events) > 3 * LINES_PER_PHASE for client in clients)
    # Some client followed on B, lost B to the restart, and caught up on A without a gap.
    moved = [
        c for c in clients if c.connections[0][0] == address_b and any(a == address_a for a, _ in c.connections[1:])
    ]
    assert moved, [(c.name, c.connections) for c in clients]

    # One cluster's operations never ran at the same time; different clusters' did, in
    # different worker processes.
    spans = {}
    for cluster in clusters:
        runs = [(s, e, op.pk) for op in Operation.objects.filter(cluster=cluster) for s, e, _ in run_intervals(op)]
        runs.sort()
        for (_, e1, op1), (s2, _, op2) in zip(runs, runs[1:], strict=False):
            assert e1 <= s2, f"cluster {cluster.name}: operation {op2} started before {op1} ended"
        spans[cluster.name] = (runs[0][0], runs[-1][1])
        attempts = sorted(
            (a.started_at, a.finished_at, a.phase.operation_id)
            for a in PhaseAttempt.objects.filter(phase__operation__cluster=cluster).select_related("phase")
        )
        for (_, end, op1), (start, _, op2) in zip(attempts, attempts[1:], strict=False):
            assert op1 == op2 or end <= start, f"cluster {cluster.name}: phases of {op1} and {op2} overlapped"
    first, second = spans["dist-1"], spans["dist-2"]
    assert first[0] < second[1] and second[0] < first[1], "clusters dist-1 and dist-2 ran in parallel"
    assert len(set(Operation.objects.filter(pk__in=ids).values_list("worker", flat=True))) >= 2


def start_redis_on(port: int, directory) -> subprocess.Popen:
    server = subprocess.Popen(redis_argv(port, directory), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return server


def test_a_redis_restart_mid_stream_loses_nothing(stack_factory, operator, tmp_path):
    """Pub/sub keeps nothing: while Redis is gone the web process's follower reads the database,
    and when Redis is back the live path resumes; the watcher sees every event once, in order."""
    if shutil.which("redis-server") is None:
        require_or_skip("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    redis = start_redis_on(port, tmp_path / "redis")
    url = f"redis://127.0.0.1:{port}/0"
    stack = stack_factory(redis_url=url, workers=0)
    operation = Operation.objects.create(
        cluster=make_cluster("restarts", team=team_of(operator)), kind="test-steps", status=Operation.Status.QUEUED
    )
    key = session_cookie(operator)
    count = 3000
    # A writer process like a worker: the real EventWriter, publishing through Redis, 300 events/s.
    produce = (
        "import time\n"
        "from operations.events import EventWriter, Heartbeat\n"
        "from operations.models import Operation\n"
        f"Operation.objects.filter(pk={operation.pk}).update(status='running', worker='writer:1')\n"
        f"writer = EventWriter(Operation.objects.get(pk={operation.pk}))\n"
        "beat = Heartbeat(writer); beat.start()\n"
        f"for n in range({count}):\n"
        "    writer.emit(f'line {n}')\n"
        "    time.sleep(1 / 300)\n"
        "writer.flush(); beat.stop()\n"
    )
    env = processes.kubeboard_env(redis_url=url, **database_env())
    client = Client("watcher", operation.pk, [stack.address], key, last_seq=count)
    runner = ClientRunner()
    runner.start()
    runner.add(client, timeout=120)
    writer = processes.start("writer", ["manage.py", "shell", "-c", produce], env, tmp_path / "logs")
    try:
        wait_until(lambda: len(client.events) > 300, timeout=60, message="live events before the restart")
        redis.terminate()
        redis.wait(10)
        during = len(client.events)
        wait_until(lambda: len(client.events) > during + 100, timeout=30, message="events while Redis is down")
        redis = start_redis_on(port, tmp_path / "redis")
        writer.popen.wait(120)
        runner.wait(timeout=60)
    finally:
        writer.stop()
        redis.terminate()
        redis.wait(10)
    assert [e["seq"] for e in client.events] == list(range(1, count + 1)), stack.logs()[-3000:]
    assert [e["message"] for e in client.events] == [f"line {n}" for n in range(count)]
    assert "could not send to channel-layer group" in writer.log(), "the writer published while Redis was gone"
    web_log = stack.web.log()
    assert "the channel layer stopped delivering" in web_log and "the channel layer delivers again" in web_log

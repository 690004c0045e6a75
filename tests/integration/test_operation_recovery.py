"""The engine across real processes: qcluster workers (ORM broker and Redis), a lost task, a
worker killed with SIGKILL mid-phase, cancel from another process, and ``manage.py operation``.

Operations use the plain-Python test kinds (tests/support/kinds.py), which the worker
processes load through KUBEBOARD_OPERATION_KIND_MODULES.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.utils import timezone

import tests.support.kinds  # noqa: F401  (registers the test kinds in this process too)
from audit.models import AuditEvent
from operations.models import Event, Operation
from operations.services import cancel_operation, start_operation
from tests.conftest import team_of
from tests.conftest import test_database_env as database_env
from tests.factories import make_cluster
from tests.support import processes
from tests.support.processes import ROOT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(300)]

KINDS = {"KUBEBOARD_OPERATION_KIND_MODULES": "tests.support.kinds"}
QUEUE_TIMEOUT = 3
LEASE = 4


def env(**extra) -> dict:
    return processes.kubeboard_env(**database_env(), **KINDS, **extra)


def manage(*args: str, extra_env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env(**(extra_env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(stack, predicate, timeout: float, message: str, **kwargs):
    """wait_until, with the processes' logs in the failure message."""
    try:
        return wait_until(predicate, timeout=timeout, message=message, **kwargs)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{stack.logs()[-6000:]}") from None


def status_of(operation: Operation) -> str:
    return Operation.objects.get(pk=operation.pk).status


def worker_process_of(stack, operation: Operation) -> processes.Process:
    """The qcluster (process group) whose worker process holds the operation."""
    pid = int(Operation.objects.get(pk=operation.pk).worker.rpartition(":")[2])
    group = os.getpgid(pid)
    return next(process for process in stack.workers if process.popen.pid == group)


# --- lost tasks --------------------------------------------------------------------------------


def test_lost_task_is_requeued_orm_broker(stack_factory, operator):
    from django_q.models import OrmQ

    stack = stack_factory(workers=0, KUBEBOARD_OPERATION_QUEUE_TIMEOUT_SECONDS=str(QUEUE_TIMEOUT), **KINDS)
    operation = start_operation(make_cluster(), "test-steps", user=operator)
    assert OrmQ.objects.count() == 1
    OrmQ.objects.all().delete()  # the broker lost it (flushed, or a worker died before claiming)
    lost_at = time.monotonic()
    stack.workers.append(
        processes.start_worker(
            env(KUBEBOARD_OPERATION_QUEUE_TIMEOUT_SECONDS=str(QUEUE_TIMEOUT)), stack.web.log_path.parent, "worker"
        )
    )
    wait_until(lambda: status_of(operation) == "succeeded", timeout=60, message="the lost operation to run")
    took = time.monotonic() - lost_at
    operation.refresh_from_db()
    assert operation.requeues == 1
    print(f"\nlost task (ORM broker) re-queued and finished {took:.1f} s after it was lost (timeout {QUEUE_TIMEOUT} s)")
    assert took < QUEUE_TIMEOUT * 1.5 + 20, stack.logs()
    requeued = operation.events.get(data__requeues=1)
    assert "queued it again" in requeued.message and requeued.level == "warning"
    assert AuditEvent.objects.filter(action="operation.requeued", object_id=str(operation.pk)).count() == 1


def test_lost_task_is_requeued_with_redis(stack_factory, redis_server):
    import redis

    timeout_env = {"KUBEBOARD_OPERATION_QUEUE_TIMEOUT_SECONDS": str(QUEUE_TIMEOUT)}
    stack = stack_factory(redis_url=redis_server, workers=0, **timeout_env, **KINDS)
    cluster = make_cluster()
    # Queued by a process configured like the web server, so the task goes into Redis.
    started = manage(
        "shell",
        "-c",
        "from clusters.models import Cluster; from operations.services import start_operation; "
        f"print(start_operation(Cluster.objects.get(pk={cluster.pk}), 'test-steps').pk)",
        extra_env={"REDIS_URL": redis_server},
    )
    assert started.returncode == 0, started.stderr
    operation = Operation.objects.get(pk=int(started.stdout.strip().splitlines()[-1]))
    client = redis.Redis.from_url(redis_server)
    assert any(b"kubeboard" in key for key in client.keys()), "the task waits in Redis"
    client.flushall()  # Redis restarted without persistence: the task is gone
    lost_at = time.monotonic()
    stack.workers.append(
        processes.start_worker(env(redis_url=redis_server, **timeout_env), stack.web.log_path.parent, "worker")
    )
    wait_until(lambda: status_of(operation) == "succeeded", timeout=60, message="the lost operation to run")
    took = time.monotonic() - lost_at
    print(f"\nlost task (Redis) re-queued and finished {took:.1f} s after it was lost (timeout {QUEUE_TIMEOUT} s)")
    assert Operation.objects.get(pk=operation.pk).requeues == 1


def test_task_waiting_for_the_cluster_lock_is_not_requeued(stack_factory, operator):
    stack = stack_factory(KUBEBOARD_OPERATION_QUEUE_TIMEOUT_SECONDS=str(QUEUE_TIMEOUT), KUBEBOARD_WORKERS="2", **KINDS)
    cluster = make_cluster()
    # The first holds the cluster for three queue timeouts; the second waits all that time.
    first = start_operation(
        cluster, "test-steps", params={"block": {"work": 1}, "block_seconds": QUEUE_TIMEOUT * 3, "ignore_cancel": True}
    )
    wait_for(stack, lambda: status_of(first) == "running", timeout=30, message="the first operation to start")
    second = start_operation(cluster, "test-steps")
    wait_for(stack, lambda: status_of(second) == "succeeded", timeout=90, message="the second operation", interval=0.3)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "succeeded"
    assert second.started_at >= first.finished_at, "one mutating operation per cluster at a time"
    assert second.requeues == 0, "a task that waits for the lock is alive, not lost"
    assert not second.events.filter(message__contains="queued it again").exists()


def test_a_waiting_operation_does_not_hold_a_worker_from_other_clusters(stack_factory, operator):
    """With two worker processes and three operations waiting behind cluster A's first, none of
    them occupies a worker while it waits: cluster B's operation starts meanwhile, and A's run
    one at a time, in order."""
    stack = stack_factory(KUBEBOARD_OPERATION_QUEUE_TIMEOUT_SECONDS=str(QUEUE_TIMEOUT), KUBEBOARD_WORKERS="2", **KINDS)
    busy, other = make_cluster("busy"), make_cluster("other")
    first = start_operation(
        busy, "test-steps", params={"block": {"work": 1}, "block_seconds": 8, "ignore_cancel": True}
    )
    wait_for(stack, lambda: status_of(first) == "running", timeout=30, message="the first operation to start")
    # More waiting operations than worker processes: before, each sat in a worker, sleeping.
    waiting = [start_operation(busy, "test-steps") for _ in range(3)]
    elsewhere = start_operation(other, "test-steps")
    wait_for(stack, lambda: status_of(elsewhere) == "succeeded", timeout=60, message="the other cluster's operation")
    assert status_of(first) == "running", "the other cluster did not have to wait for the busy one"
    wait_for(
        stack,
        lambda: all(status_of(operation) == "succeeded" for operation in waiting),
        timeout=90,
        message="the waiting operations, woken one after another",
        interval=0.3,
    )
    runs = sorted(Operation.objects.filter(cluster=busy), key=lambda operation: operation.started_at)
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later.started_at >= earlier.finished_at, "one mutating operation per cluster at a time"
    assert [operation.pk for operation in runs] == [first.pk, *(operation.pk for operation in waiting)], "in order"
    # Not re-queued while waiting behind a running one (that one wakes it). Once woken, a worker
    # slower than the 3 s queue timeout to pick it up (a loaded CI host) may rightly re-queue it.
    for earlier, later in zip(runs, runs[1:], strict=False):
        requeued = Event.objects.filter(operation=later, message__contains="queued it again")
        assert not requeued.filter(created__lt=earlier.finished_at).exists(), (
            f"#{later.pk} re-queued while it waited behind #{earlier.pk}\n{timeline(runs)}"
        )


def timeline(operations: list[Operation]) -> str:
    """Every event of these operations in time order: what a failure needs to be understood."""
    events = Event.objects.filter(operation__in=operations).order_by("created", "operation_id", "seq")
    lines = [f"{op.pk}: {op.status} started {op.started_at} finished {op.finished_at}" for op in operations]
    lines += [f"{event.created.time()} #{event.operation_id} {event.kind} {event.message[:160]}" for event in events]
    return "\n".join(lines)


# --- workers that die --------------------------------------------------------------------------


def two_worker_stack(stack_factory):
    stack = stack_factory(
        workers=2,
        KUBEBOARD_WORKERS="1",
        KUBEBOARD_OPERATION_LEASE_SECONDS=str(LEASE),
        **KINDS,
    )
    return stack


def test_sigkilled_worker_mid_idempotent_phase_is_resumed_automatically(stack_factory, operator):
    stack = two_worker_stack(stack_factory)
    operation = start_operation(
        make_cluster(),
        "test-steps",
        user=operator,
        params={
            "plan": [["", "prepare"], ["", "idempotent-work"], ["", "finish"]],
            "block": {"idempotent-work": 1},
            "block_seconds": 120,
            "ignore_cancel": True,
        },
    )
    wait_for(
        stack,
        lambda: operation.events.filter(message="idempotent-work blocks until cancelled").exists(),
        timeout=60,
        message="the phase to start",
    )
    victim = worker_process_of(stack, operation)
    victim.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(
        lambda: Event.objects.filter(operation=operation, data__status="interrupted").exists(),
        timeout=LEASE * 3,
        message="the other worker to reap the operation",
    )
    reaped_after = time.monotonic() - killed_at
    wait_until(lambda: status_of(operation) == "succeeded", timeout=60, message="the automatic resume to finish")
    print(f"\nSIGKILL: interrupted {reaped_after:.1f} s after the kill (lease {LEASE} s), then resumed automatically")
    assert reaped_after <= LEASE + 1
    operation.refresh_from_db()
    assert operation.auto_resumes == 1
    phase = operation.phases.get(name="idempotent-work")
    history = [(a.number, a.status, a.trigger) for a in phase.attempts.all()]
    assert history == [(1, "interrupted", "start"), (2, "succeeded", "auto")]
    first, second = phase.attempts.all()
    assert first.worker != second.worker and "is gone" in first.error
    assert operation.events.filter(kind="status", message__contains="resumed automatically").exists()
    assert operation.phases.get(name="prepare").attempts.count() == 1, "a finished phase is not re-run"
    seqs = list(operation.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_sigkilled_worker_mid_plain_phase_waits_for_a_person(stack_factory, operator):
    stack = two_worker_stack(stack_factory)
    operation = start_operation(
        make_cluster(team=team_of(operator)),
        "test-steps",
        user=operator,
        params={"block": {"work": 1}, "block_seconds": 120, "ignore_cancel": True},
    )
    wait_for(
        stack,
        lambda: operation.events.filter(message="work blocks until cancelled").exists(),
        timeout=60,
        message="the phase to start",
    )
    worker_process_of(stack, operation).stop(signal.SIGKILL)
    wait_until(lambda: status_of(operation) == "interrupted", timeout=LEASE * 3, message="the reaper")
    time.sleep(LEASE)  # long enough for an automatic resume to have happened, had it been allowed
    operation.refresh_from_db()
    assert operation.status == "interrupted" and operation.auto_resumes == 0

    resumed = manage("operation", "resume", str(operation.pk), "--user", operator.username, "--follow")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "=== operation succeeded" in resumed.stdout
    phase = operation.phases.get(name="work")
    assert [(a.status, a.trigger) for a in phase.attempts.all()] == [("interrupted", "start"), ("succeeded", "resume")]


# --- cancel and follow across processes ------------------------------------------------------------


def test_cancel_from_another_process_stops_a_blocking_phase(stack_factory, operator):
    stack_factory(**KINDS)
    operation = start_operation(make_cluster(), "test-steps", params={"block": {"work": 1}, "block_seconds": 120})
    wait_until(
        lambda: operation.events.filter(message="work blocks until cancelled").exists(),
        timeout=60,
        message="the phase to block",
    )
    requested = timezone.now()
    cancel_operation(operation, user=operator)
    wait_until(lambda: status_of(operation) == "cancelled", timeout=15, message="the cancel to take effect")
    operation.refresh_from_db()
    took = (operation.finished_at - requested).total_seconds()
    print(f"\ncancel of a blocking phase in a worker process took {took:.2f} s")
    assert took < 5
    assert operation.phases.get(name="work").status == "cancelled"


def test_follow_prints_live_and_exits_with_the_outcome(stack_factory, operator):
    good = start_operation(make_cluster("good"), "test-steps", params={"sleep": 0.5})
    follower = subprocess.Popen(
        [sys.executable, "manage.py", "operation", "follow", str(good.pk)],
        cwd=ROOT,
        env=env(PYTHONUNBUFFERED="1"),  # its first line before any event
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The worker starts once the follower follows: on a loaded machine starting the command took
    # longer than the whole operation, and its events were then all old.
    lines, arrivals = [follower.stdout.readline().rstrip("\n")], [timezone.now()]
    assert lines[0].startswith("following "), (lines, follower.stderr.read())
    stack_factory(**KINDS)
    for line in follower.stdout:
        lines.append(line.rstrip("\n"))
        arrivals.append(timezone.now())
    assert follower.wait(timeout=30) == 0, follower.stderr.read()
    good.refresh_from_db()
    assert good.status == "succeeded"
    markers = [line.split(" ==> ", 1)[1] for line in lines if " ==> " in line]
    assert markers[:2] == ["prepare: running", "prepare: succeeded (0.50 s)"] or markers[0] == "prepare: running"
    assert [m.split(" (")[0] for m in markers] == [
        "prepare: running",
        "prepare: succeeded",
        "work: running",
        "work: succeeded",
        "finish: running",
        "finish: succeeded",
    ]
    assert lines[-1].endswith("=== operation succeeded: Operation succeeded.")
    first_marker = next(i for i, line in enumerate(lines) if " ==> " in line)
    assert arrivals[first_marker] < good.finished_at, "events were printed while the operation ran"

    bad = start_operation(make_cluster("bad"), "test-steps", params={"fail": {"work": 1}})
    followed = manage("operation", "follow", str(bad.pk))
    assert followed.returncode == 1
    assert "what to do: Fix the machine, then resume." in followed.stdout
    assert "=== operation failed" in followed.stdout

    listed = manage("operation", "list", "bad")
    assert f"{bad.pk}" in listed.stdout and "failed" in listed.stdout and "1/3 phases" in listed.stdout
    missing = manage("operation", "follow", "999999")
    assert missing.returncode == 2 and "there is no operation 999999" in missing.stderr

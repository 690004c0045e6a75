"""The operation engine in-process: groups in parallel, failure policies, attempts, cancel, skip,
typed and sanitized events. Phases are plain Python kinds (tests/support/kinds.py) run by the
real runner, threads and database (SQLite here, PostgreSQL in the postgres pass)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

import tests.support.kinds  # noqa: F401  (registers the test kinds)
from audit.models import AuditEvent
from operations.events import EventWriter, clean_text
from operations.models import Operation, PhaseAttempt, PhaseRun
from operations.registry import UnknownKind
from operations.runner import run_operation
from operations.services import (
    RUN_TASK,
    OperationStateError,
    cancel_operation,
    reap_operations,
    requeue_lost_operations,
    resume_operation,
    start_operation,
)
from tests.factories import make_cluster
from tests.support.processes import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def grouped_plan(groups, names=("work",), before=("prepare",), after=("finish",)):
    return (
        [["", name] for name in before]
        + [[group, name] for group in groups for name in names]
        + [["", name] for name in after]
    )


def max_overlap(intervals) -> int:
    """The largest number of intervals open at one instant (a sweep over start/end points)."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, delta in points:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def attempt_intervals(operation, name="work"):
    return [
        (a.started_at, a.finished_at)
        for a in PhaseAttempt.objects.filter(phase__operation=operation, phase__name=name).order_by("started_at")
    ]


def states(operation) -> dict[str, str]:
    return {phase.label: phase.status for phase in operation.phases.all()}


def in_thread(target, *args) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run():
        from django.db import connection

        try:
            result["value"] = target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


# --- groups and parallelism -----------------------------------------------------------------


def test_groups_run_in_parallel_up_to_the_bound(operator):
    groups = ["n1", "n2", "n3", "n4", "n5"]
    operation = start_operation(
        make_cluster(), "test-steps", user=operator, params={"plan": grouped_plan(groups), "parallel": 2, "sleep": 0.4}
    )
    assert run_operation(operation.pk) == "succeeded"
    intervals = attempt_intervals(operation)
    assert len(intervals) == 5
    assert max_overlap(intervals) == 2, "two groups at a time: never more, and they did overlap"
    # Cluster-level phases are barriers: prepare ends before any group starts, finish starts after all end.
    prepare = PhaseAttempt.objects.get(phase__operation=operation, phase__name="prepare")
    finish = PhaseAttempt.objects.get(phase__operation=operation, phase__name="finish")
    assert prepare.finished_at <= min(start for start, _ in intervals)
    assert finish.started_at >= max(end for _, end in intervals)
    seqs = list(operation.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)), "one total order of events across threads"
    # Each group's events name their group, so the page can filter them.
    assert set(operation.events.filter(phase="work").values_list("group", flat=True)) == set(groups)


def test_bound_one_runs_groups_one_after_another(operator):
    operation = start_operation(
        make_cluster(), "test-steps", params={"plan": grouped_plan(["cp1", "cp2", "cp3"]), "parallel": 1, "sleep": 0.2}
    )
    assert run_operation(operation.pk) == "succeeded"
    assert max_overlap(attempt_intervals(operation)) == 1


def test_phases_within_a_group_run_in_order(operator):
    plan = grouped_plan(["n1", "n2"], names=("prepare", "work", "finish"), before=(), after=())
    operation = start_operation(make_cluster(), "test-steps", params={"plan": plan, "parallel": 2, "sleep": 0.1})
    assert run_operation(operation.pk) == "succeeded"
    for group in ("n1", "n2"):
        attempts = list(
            PhaseAttempt.objects.filter(phase__operation=operation, phase__group=group).order_by("phase__order")
        )
        assert [a.phase.name for a in attempts] == ["prepare", "work", "finish"]
        for earlier, later in zip(attempts, attempts[1:], strict=False):
            assert earlier.finished_at <= later.started_at


def test_parallel_group_failure_lets_siblings_finish_and_resume_runs_only_the_failed_group(operator):
    plan = grouped_plan(["n1", "n2", "n3"], names=("work", "idempotent-work"))
    operation = start_operation(
        make_cluster(),
        "test-steps",
        user=operator,
        params={"plan": plan, "parallel": 3, "sleep": 0.1, "fail": {"n2:work": 1}},
    )
    assert run_operation(operation.pk) == "failed"
    operation.refresh_from_db()
    assert states(operation) == {
        "prepare": "succeeded",
        "n1:work": "succeeded",
        "n1:idempotent-work": "succeeded",
        "n2:work": "failed",
        "n2:idempotent-work": "pending",
        "n3:work": "succeeded",
        "n3:idempotent-work": "succeeded",
        "finish": "pending",
    }
    assert "n2:work failed" in operation.error
    failed = operation.phases.get(group="n2", name="work")
    assert failed.hint == "Fix the machine, then resume."

    resume_operation(operation, user=operator)
    assert run_operation(operation.pk) == "succeeded"
    attempts = {
        phase.label: [(a.number, a.status, a.trigger) for a in phase.attempts.all()]
        for phase in operation.phases.prefetch_related("attempts")
    }
    assert attempts["n2:work"] == [(1, "failed", "start"), (2, "succeeded", "resume")]
    assert attempts["n1:work"] == [(1, "succeeded", "start")], "a group that succeeded is not re-run"
    assert attempts["n3:idempotent-work"] == [(1, "succeeded", "start")]
    assert attempts["finish"] == [(1, "succeeded", "start")]


def test_bound_one_stops_at_the_first_failure(operator):
    operation = start_operation(
        make_cluster(), "test-steps", params={"plan": grouped_plan(["cp1", "cp2", "cp3"]), "fail": {"cp2:work": 1}}
    )
    assert run_operation(operation.pk) == "failed"
    assert states(operation) == {
        "prepare": "succeeded",
        "cp1:work": "succeeded",
        "cp2:work": "failed",
        "cp3:work": "pending",
        "finish": "pending",
    }


def test_attempt_history_keeps_every_try_with_its_events(operator):
    operation = start_operation(
        make_cluster(), "test-steps", params={"fail": {"work": 2}, "lines": {"work": ["[certs] some output"]}}
    )
    assert run_operation(operation.pk) == "failed"
    resume_operation(operation, user=operator)
    assert run_operation(operation.pk) == "failed"
    resume_operation(operation, user=operator)
    assert run_operation(operation.pk) == "succeeded"
    work = operation.phases.get(name="work")
    attempts = list(work.attempts.all())
    assert [(a.number, a.status, a.exit_status) for a in attempts] == [
        (1, "failed", 3),
        (2, "failed", 3),
        (3, "succeeded", None),
    ]
    assert attempts[0].error == "work failed on purpose (attempt 1)" and attempts[0].hint
    assert work.attempt == 3 and work.status == "succeeded" and work.error == "" and work.hint == ""
    for attempt in attempts:
        assert attempt.duration is not None and attempt.worker
        events = operation.events.filter(phase="work", seq__gte=attempt.first_seq, seq__lte=attempt.last_seq)
        assert events.filter(message=f"work attempt {attempt.number} begins").exists()
        assert events.first().data == {"status": "running", "attempt": attempt.number}
        assert events.last().data["status"] == attempt.status
    # The previous attempt is handed to the phase, so it can clean up after it.
    begins = operation.events.get(message="work attempt 2 begins")
    assert begins.data["previous"] == "failed" and begins.data["job"].startswith(f"kubeboard-op{operation.pk}-")


def test_non_mutating_kinds_run_beside_a_mutating_one(operator):
    cluster = make_cluster()
    busy = start_operation(cluster, "test-steps")
    Operation.objects.filter(pk=busy.pk).update(status="running", worker="elsewhere:1")
    reader = start_operation(cluster, "test-read-only")
    assert run_operation(reader.pk) == "succeeded"


def test_unknown_kind_is_refused_with_the_known_ones(operator):
    with pytest.raises(UnknownKind, match="unknown operation kind 'nope'.*prepare-identity"):
        start_operation(make_cluster(), "nope")
    assert not Operation.objects.exists()


# --- a cluster's queue ----------------------------------------------------------------------------


def operation_tasks_queued() -> list[int]:
    """The operation ids whose run_operation task waits in the ORM broker (nothing consumes it here)."""
    return [q.task["args"][0] for q in OrmQ.objects.all() if q.task.get("func") == RUN_TASK]


def test_only_the_head_of_a_clusters_queue_can_be_lost(operator):
    """Between one operation ending and the next being claimed nothing of the cluster runs; the
    operations behind the next one are still waiting their turn, not lost: re-queueing them would
    give them a second task that could claim the cluster out of turn (seen under CI load)."""
    cluster = make_cluster()
    head, second, third = (start_operation(cluster, "test-steps", user=operator) for _ in range(3))
    elsewhere = start_operation(make_cluster("elsewhere"), "test-steps", user=operator)
    long_ago = timezone.now() - timedelta(hours=1)
    Operation.objects.all().update(heartbeat_at=long_ago)
    OrmQ.objects.all().delete()
    assert requeue_lost_operations() == 2
    assert sorted(operation_tasks_queued()) == sorted([head.pk, elsewhere.pk])
    for operation in (second, third):
        operation.refresh_from_db()
        assert operation.requeues == 0 and not operation.events.filter(message__contains="queued it again").exists()
    # Once the head has run, the next is the head: lost if nobody picks it up.
    assert run_operation(head.pk) == "succeeded"
    Operation.objects.filter(pk=second.pk).update(heartbeat_at=long_ago)
    OrmQ.objects.all().delete()
    assert requeue_lost_operations() == 1
    assert operation_tasks_queued() == [second.pk]


def test_cancelling_the_queued_head_wakes_the_next_at_once(operator):
    cluster = make_cluster()
    head, second = (start_operation(cluster, "test-steps", user=operator) for _ in range(2))
    OrmQ.objects.all().delete()
    cancel_operation(head, user=operator)
    assert operation_tasks_queued() == [second.pk]
    assert run_operation(second.pk) == "succeeded"


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_a_queued_operation_at_once(operator):
    operation = start_operation(make_cluster(), "test-steps", user=operator)
    cancelled = cancel_operation(operation, user=operator)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert run_operation(operation.pk) == "not queued (cancelled)"
    assert set(states(operation).values()) == {"pending"}
    status = operation.events.get(kind="status")
    assert status.data["status"] == "cancelled" and status.data["by"] == operator.username
    audit = AuditEvent.objects.get(action="operation.cancelled")
    assert audit.actor_name == operator.username
    with pytest.raises(OperationStateError, match="only a queued or running"):
        cancel_operation(operation, user=operator)


def test_cancel_stops_a_blocking_phase_within_a_bound(operator):
    operation = start_operation(
        make_cluster(), "test-steps", user=operator, params={"block": {"work": 1}, "block_seconds": 60}
    )
    thread, result = in_thread(run_operation, operation.pk)
    wait_until(
        lambda: operation.events.filter(message="work blocks until cancelled").exists(),
        timeout=20,
        message="the work phase to block",
    )
    requested = time.monotonic()
    cancel_operation(operation, user=operator)
    thread.join(timeout=30)
    took = time.monotonic() - requested
    assert result["value"] == "cancelled"
    assert took < 5, f"cancel took {took:.1f} s; the phase blocks for 60 s unless cancel_event is set"
    operation.refresh_from_db()
    assert operation.status == "cancelled" and f"Cancelled by {operator.username}" in operation.error
    assert states(operation) == {"prepare": "succeeded", "work": "cancelled", "finish": "pending"}
    assert operation.phases.get(name="work").attempts.get().status == "cancelled"
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["operation.queued", "operation.cancel_requested", "operation.cancelled"]
    assert operation.events.filter(message__startswith=f"Cancel requested by {operator.username}").exists()

    # Resuming a cancelled operation re-runs the cancelled phase as a new attempt.
    resume_operation(operation, user=operator)
    assert run_operation(operation.pk) == "succeeded"
    assert [a.status for a in operation.phases.get(name="work").attempts.all()] == ["cancelled", "succeeded"]


def test_cancel_stops_every_parallel_group(operator):
    plan = grouped_plan(["n1", "n2", "n3"])
    block = {f"{group}:work": 1 for group in ("n1", "n2", "n3")}
    operation = start_operation(make_cluster(), "test-steps", params={"plan": plan, "parallel": 2, "block": block})
    thread, result = in_thread(run_operation, operation.pk)
    wait_until(
        lambda: operation.events.filter(message__endswith="blocks until cancelled").count() == 2,
        timeout=20,
        message="two groups to block",
    )
    cancel_operation(operation, user=operator)
    thread.join(timeout=30)
    assert result["value"] == "cancelled"
    final = states(operation)
    assert sorted(final[f"{g}:work"] for g in ("n1", "n2", "n3")) == ["cancelled", "cancelled", "pending"]
    assert final["finish"] == "pending"


# --- skip --------------------------------------------------------------------------------------


def test_skip_at_start_with_kubeadm_phase_names(operator):
    operation = start_operation(
        make_cluster(),
        "test-kubeadm-init",
        user=operator,
        skip=["preflight", "addon"],
        skip_reason="no container runtime",
    )
    skipped = operation.phases.filter(status="skipped")
    assert sorted(skipped.values_list("name", flat=True)) == ["addon", "preflight"]
    assert skipped.first().skip_reason == f"skipped by {operator.username}: no container runtime"
    audit = AuditEvent.objects.get(action="operation.queued")
    assert audit.details["skipped"] == ["preflight", "addon"] and audit.details["skip_reason"] == "no container runtime"
    assert run_operation(operation.pk) == "succeeded"
    assert not PhaseAttempt.objects.filter(phase__operation=operation, phase__name__in=["preflight", "addon"]).exists()
    events = operation.events.filter(kind="phase", data__status="skipped")
    assert sorted(events.values_list("phase", flat=True)) == ["addon", "preflight"]
    assert events.first().data["by"] == operator.username
    # A phase can pass the skipped names on to kubeadm (--skip-phases).
    certs = operation.events.get(message="certs attempt 1 begins")
    assert certs.data["skip_phases"] == ["preflight", "addon"]


def test_skip_refuses_unknown_names_and_leaves_nothing_behind(operator):
    with pytest.raises(OperationStateError, match=r"cannot skip 'preflite'.*preflight"):
        start_operation(make_cluster(), "test-kubeadm-init", skip=["preflite"])
    assert not Operation.objects.exists() and not AuditEvent.objects.exists()


def test_skip_at_resume_one_group(operator):
    plan = grouped_plan(["n1", "n2"])
    operation = start_operation(
        make_cluster(), "test-steps", params={"plan": plan, "parallel": 2, "fail": {"n1:work": 5, "n2:work": 5}}
    )
    assert run_operation(operation.pk) == "failed"
    with pytest.raises(OperationStateError, match="cannot skip 'prepare'"):
        resume_operation(operation, user=operator, skip=["prepare"])  # already done
    resume_operation(operation, user=operator, skip=["n1:work"], skip_reason="joined by hand")
    assert run_operation(operation.pk) == "failed"
    assert states(operation)["n1:work"] == "skipped" and states(operation)["n2:work"] == "failed"
    resume_operation(operation, user=operator, skip=["work"])
    assert run_operation(operation.pk) == "succeeded"
    assert AuditEvent.objects.filter(action="operation.resumed", details__skipped=["n1:work"]).exists()


# --- typed and sanitized events ------------------------------------------------------------------


def test_output_lines_become_typed_events(operator):
    lines = [
        '[certs] Generating "ca" certificate and key',
        "W1127 07:00:00.123456   12345 checks.go:1080] the kubelet is not running",
        "\t[WARNING Swap]: swap is supported for cgroup v2 only",
        "error execution phase preflight: [preflight] Some fatal errors occurred",
        "plain line",
    ]
    operation = start_operation(make_cluster(), "test-steps", params={"lines": {"work": lines}})
    assert run_operation(operation.pk) == "succeeded"
    rows = list(operation.events.filter(phase="work", kind="log").exclude(source="").values_list("source", "level"))
    assert rows == [("certs", "info"), ("klog", "warning"), ("preflight", "warning"), ("preflight", "error")]
    swap = operation.events.get(source="preflight", level="warning")
    assert swap.data == {"check": "Swap"}
    assert operation.events.get(message="plain line").level == "info"


def test_hostile_output_is_stored_clean_and_capped(operator, settings):
    operation = start_operation(make_cluster(), "test-steps", params={"hostile_output": "work"})
    assert run_operation(operation.pk) == "succeeded"
    messages = list(operation.events.filter(phase="work", kind="log").order_by("seq").values_list("message", flat=True))
    assert "red and bold text" in messages
    assert "tab\tkept, bell and backspace gone, C1 CSI" in messages
    assert "bad surrogate ? here" in messages
    capped = [m for m in messages if m.startswith("xxxx")][0]
    limit = settings.EVENT_MESSAGE_MAX_CHARS
    assert capped == "x" * limit + f" … [{1_000_000 - limit} more characters cut]"


def test_event_data_that_json_cannot_hold_is_stored_as_text(operator):
    from datetime import datetime
    from pathlib import Path

    operation = Operation.objects.create(cluster=make_cluster(), kind="test-steps", status="running", worker="w:1")
    writer = EventWriter(operation, on_publish=lambda *args: None)
    writer.emit(
        "odd data",
        data={
            "when": datetime(2026, 1, 2),
            "path": Path("/etc/kubernetes"),
            "nan": float("nan"),
            "nested": {"set": {1}},
            "fine": [1, 2.5, True, None, "x\x00"],
        },
    )
    writer.flush()
    stored = operation.events.get(message="odd data").data
    assert stored == {
        "when": "2026-01-02 00:00:00",
        "path": "/etc/kubernetes",
        "nan": "nan",
        "nested": {"set": [1]},
        "fine": [1, 2.5, True, None, "x"],
    }


def test_clean_text_keeps_ordinary_text():
    text = 'Generating "ca" certificate — ünïcödé ✓\tand a tab\nsecond line'
    assert clean_text(text) == text
    assert clean_text("abc", limit=2) == "ab … [1 more characters cut]"


def test_phase_error_hint_reaches_event_phase_and_attempt(operator):
    operation = start_operation(make_cluster(), "test-steps", params={"fail": {"work": 1}})
    assert run_operation(operation.pk) == "failed"
    event = operation.events.get(kind="phase", phase="work", data__status="failed")
    assert event.data["hint"] == "Fix the machine, then resume." and event.data["exit_status"] == 3
    phase = operation.phases.get(name="work")
    assert phase.hint == event.data["hint"] and phase.attempts.get().hint == event.data["hint"]


# --- the runner's own failures and dead workers ------------------------------------------------


def test_a_runner_crash_ends_interrupted_at_once_not_after_the_lease(operator):
    # A kind whose bound cannot be computed is a bug in the kind, not in a phase.
    plan = grouped_plan(["n1", "n2"])
    operation = start_operation(make_cluster(), "test-steps", params={"plan": plan, "parallel": "two"})
    assert run_operation(operation.pk) == "crashed"
    operation.refresh_from_db()
    assert operation.status == "interrupted"
    assert "unexpected error (ValueError" in operation.error
    assert states(operation)["prepare"] == "succeeded"
    resume_operation(operation, user=operator)  # fixable and resumable like any interruption


def test_dead_worker_of_an_idempotent_phase_is_resumed_automatically_up_to_the_limit(operator, settings):
    settings.OPERATION_AUTO_RESUME_LIMIT = 1
    plan = [["", "idempotent-work"]]
    operation = start_operation(make_cluster(), "test-steps", params={"plan": plan})
    for round_ in (1, 2):
        Operation.objects.filter(pk=operation.pk).update(status="running", worker="elsewhere:1", heartbeat_at=None)
        phase = operation.phases.get()
        PhaseRun.objects.filter(pk=phase.pk).update(status="running", attempt=round_)
        PhaseAttempt.objects.create(phase=phase, number=round_, status="running", worker="elsewhere:1")
        assert reap_operations() == 1
        operation.refresh_from_db()
        if round_ == 1:
            assert operation.status == "queued" and operation.auto_resumes == 1, "resumed by itself"
            assert AuditEvent.objects.filter(action="operation.resumed", details__automatic=True).count() == 1
        else:
            assert operation.status == "interrupted" and operation.auto_resumes == 1, "the limit holds"
    assert list(PhaseAttempt.objects.filter(phase__operation=operation).values_list("status", flat=True)) == [
        "interrupted",
        "interrupted",
    ]


def test_a_cancelled_operation_whose_worker_died_is_not_resumed_automatically(operator):
    operation = start_operation(make_cluster(), "test-steps", params={"plan": [["", "idempotent-work"]]})
    Operation.objects.filter(pk=operation.pk).update(status="running", worker="elsewhere:1", heartbeat_at=None)
    phase = operation.phases.get()
    PhaseRun.objects.filter(pk=phase.pk).update(status="running", attempt=1)
    PhaseAttempt.objects.create(phase=phase, number=1, status="running", worker="elsewhere:1")
    cancel_operation(operation, user=operator)  # nobody runs it any more to notice
    assert reap_operations() == 1
    operation.refresh_from_db()
    assert operation.status == "interrupted" and operation.auto_resumes == 0


# --- the audit record of the end -----------------------------------------------------------------


def end_records(operation) -> list[tuple[str, str]]:
    """(action, outcome) of every record the operation's end wrote (not queued/resumed/cancel_requested)."""
    starts = ("operation.queued", "operation.resumed", "operation.cancel_requested")
    return list(
        AuditEvent.objects.filter(object_type="operation", object_id=str(operation.pk))
        .exclude(action__in=starts)
        .order_by("seq")
        .values_list("action", "outcome")
    )


def history_records(user, outcome: str) -> list[tuple[str, int]]:
    """(action, operation id) of what History lists under Outcome = ``outcome``, read from the page."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    page = client.get("/audit/", {"outcome": outcome})
    assert page.status_code == 200
    return [(event.action, int(event.object_id)) for event in page.context["page"].records]


def test_each_way_an_operation_ends_writes_one_record_with_that_outcome(operator, make_user):
    failed = start_operation(make_cluster(), "test-steps", user=operator, params={"fail": {"work": 1}})
    assert run_operation(failed.pk) == "failed"
    assert end_records(failed) == [("operation.failed", "failure")]

    resume_operation(failed, user=operator)
    assert run_operation(failed.pk) == "succeeded"
    assert end_records(failed) == [("operation.failed", "failure"), ("operation.succeeded", "success")]

    queued = start_operation(make_cluster("c2"), "test-steps", user=operator)
    cancel_operation(queued, user=operator)
    assert end_records(queued) == [("operation.cancelled", "cancelled")]

    crashed = start_operation(
        make_cluster("c3"), "test-steps", params={"plan": grouped_plan(["n1", "n2"]), "parallel": "x"}
    )
    assert run_operation(crashed.pk) == "crashed"
    assert end_records(crashed) == [("operation.interrupted", "failure")]

    # History's Outcome filter finds them (it showed nothing for Failed when every end was "Succeeded").
    root = make_user("root", team=None, superuser=True)
    assert sorted(history_records(root, "failure")) == [
        ("operation.failed", failed.pk),
        ("operation.interrupted", crashed.pk),
    ]
    assert history_records(root, "cancelled") == [("operation.cancelled", queued.pk)]


def test_a_cancel_during_a_phase_ends_with_one_cancelled_record(operator):
    operation = start_operation(
        make_cluster(), "test-steps", user=operator, params={"block": {"work": 1}, "block_seconds": 60}
    )
    thread, result = in_thread(run_operation, operation.pk)
    wait_until(
        lambda: operation.events.filter(message="work blocks until cancelled").exists(),
        timeout=20,
        message="the work phase to block",
    )
    cancel_operation(operation, user=operator)
    thread.join(timeout=30)
    assert result["value"] == "cancelled"
    assert end_records(operation) == [("operation.cancelled", "cancelled")]
    requested = AuditEvent.objects.get(action="operation.cancel_requested")
    assert requested.outcome == "success", "the request to cancel was granted"

"""Creating, queueing, resuming, cancelling and reaping operations. Views, commands and tasks call these."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import actor_label, record, refusals
from core.formatting import duration_words
from operations.models import Event, Operation, PhaseAttempt, PhaseRun
from operations.registry import UnknownKind, get_kind, notify_finished

log = logging.getLogger(__name__)


class OperationStateError(Exception):
    """The operation is not in a state that allows the requested change (message says why)."""


# The audit outcome of each way an operation ends, so History's Outcome filter finds the
# operations that failed or were stopped (an interrupted one did not finish: it failed).
END_OUTCOMES = {
    Operation.Status.SUCCEEDED: AuditEvent.Outcome.SUCCESS,
    Operation.Status.FAILED: AuditEvent.Outcome.FAILURE,
    Operation.Status.INTERRUPTED: AuditEvent.Outcome.FAILURE,
    Operation.Status.CANCELLED: AuditEvent.Outcome.CANCELLED,
}


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# The django-q2 task that runs an operation (operations/tasks.py).
RUN_TASK = "operations.tasks.run_operation"


def enqueue(operation: Operation) -> None:
    """Queue the background task once the surrounding transaction has committed."""
    from django_q.tasks import async_task

    operation_id = operation.pk
    transaction.on_commit(lambda: async_task(RUN_TASK, operation_id, task_name=f"operation-{operation_id}"))


def skippable_phases(operation: Operation) -> list[PhaseRun]:
    """The phases of ``operation`` a person may still skip: not finished, and one its kind lets
    people skip (for kubeadm's workflows: kubeadm's own phases, not Kubeboard's checks)."""
    try:
        kind = get_kind(operation.kind)
    except UnknownKind:
        return []
    phases = operation.phases.exclude(status__in=PhaseRun.DONE_STATUSES).order_by("order")
    return [phase for phase in phases if kind.may_skip(phase.name)]


def _resolve_skip(phases: list[PhaseRun], skip: Iterable[str], kind=None) -> list[PhaseRun]:
    """Phases named by ``skip``: ``name`` (in every group) or ``group:name`` (one group).

    Only phases that have not finished, and that the kind lets people skip, may be skipped;
    anything else is refused with the names that would have been accepted, so a typo never
    silently runs a phase.
    """
    wanted = [item.strip() for item in skip if item and item.strip()]
    open_phases = [
        phase
        for phase in phases
        if phase.status not in PhaseRun.DONE_STATUSES and (kind is None or kind.may_skip(phase.name))
    ]
    chosen: dict[int, PhaseRun] = {}
    for item in wanted:
        matches = [phase for phase in open_phases if item in (phase.name, phase.label)]
        if not matches:
            names = sorted({phase.name for phase in open_phases} | {phase.label for phase in open_phases})
            raise OperationStateError(
                f"cannot skip {item!r}: no phase of that name is left to run "
                f"(phases that can be skipped: {', '.join(names) or 'none'})"
            )
        for phase in matches:
            chosen[phase.pk] = phase
    return sorted(chosen.values(), key=lambda phase: phase.order)


def _skip_phases(operation: Operation, phases: list[PhaseRun], *, user, reason: str) -> None:
    """Mark phases skipped and tell the story in one event each (who, why)."""
    who = actor_label(user)
    note = f"skipped by {who}" + (f": {reason}" if reason else "")
    for phase in phases:
        PhaseRun.objects.filter(pk=phase.pk).update(status=PhaseRun.Status.SKIPPED, skip_reason=note[:255])
        append_system_event(
            operation.pk,
            f"Phase {phase.label} {note}.",
            kind=Event.Kind.PHASE,
            level=Event.Level.WARNING,
            data={"status": PhaseRun.Status.SKIPPED, "by": who, "reason": reason},
            phase=phase.name,
            group=phase.group,
        )


def start_operation(
    cluster, kind: str, *, user=None, params: dict | None = None, skip: Iterable[str] = (), skip_reason: str = ""
) -> Operation:
    """Record an operation with its planned phases, audit it, and queue it — all or nothing."""
    operation_kind = get_kind(kind)
    skip = list(skip)
    with transaction.atomic():
        operation = Operation.objects.create(
            cluster=cluster,
            kind=kind,
            params=params or {},
            mutating=operation_kind.mutating,
            requested_by=user if getattr(user, "pk", None) else None,
            heartbeat_at=timezone.now(),
        )
        planned = operation_kind.planned(operation)
        PhaseRun.objects.bulk_create(
            PhaseRun(
                operation=operation,
                name=item.name,
                group=item.group,
                node_id=item.node_id,
                description=item.description or operation_kind.spec(item.name).description,
                order=index,
            )
            for index, item in enumerate(planned)
        )
        skipped = _resolve_skip(list(operation.phases.all()), skip, operation_kind)
        details: dict = {"kind": kind}
        if skipped:
            details["skipped"] = [phase.label for phase in skipped]
            if skip_reason:
                details["skip_reason"] = skip_reason
        record("operation.queued", actor=user, obj=operation, cluster=cluster, details=details)
        _skip_phases(operation, skipped, user=user, reason=skip_reason)
        enqueue(operation)
    operation.refresh_from_db()
    return operation


def resume_operation(
    operation: Operation, *, user=None, skip: Iterable[str] = (), skip_reason: str = "", automatic: bool = False
) -> Operation:
    """Queue a failed, interrupted or cancelled operation again from where it stopped.

    Finished phases are not re-run; each phase run again gets a new attempt (history is kept).
    A refused resume is audited too (outcome "denied", with the reason).
    """
    with refusals("operation.resumed", OperationStateError, UnknownKind, actor=user, obj=operation):
        return _resume(operation, user=user, skip=skip, skip_reason=skip_reason, automatic=automatic)


def _resume(operation: Operation, *, user, skip: Iterable[str], skip_reason: str, automatic: bool) -> Operation:
    with transaction.atomic():
        locked = Operation.objects.select_for_update().get(pk=operation.pk)
        if locked.status not in Operation.RESUMABLE_STATUSES:
            raise OperationStateError(
                f"only a failed, interrupted or cancelled operation can be resumed; this one is {locked.status}"
            )
        kind = get_kind(locked.kind)  # refuse early if this version no longer knows the kind
        phases = list(locked.phases.order_by("order"))
        skipped = _resolve_skip(phases, skip, kind)
        # An attempt still "running" here lost its runner without a reaper closing it: close it now.
        PhaseAttempt.objects.filter(phase__operation=locked, status=PhaseAttempt.Status.RUNNING).update(
            status=PhaseAttempt.Status.INTERRUPTED, finished_at=timezone.now(), error="its runner stopped"
        )
        locked.phases.exclude(status__in=PhaseRun.DONE_STATUSES).update(
            status=PhaseRun.Status.PENDING, error="", hint=""
        )
        Operation.objects.filter(pk=locked.pk).update(
            status=Operation.Status.QUEUED,
            error="",
            finished_at=None,
            cancel_requested_at=None,
            cancel_requested_by=None,
            heartbeat_at=timezone.now(),
            resume_trigger=PhaseAttempt.Trigger.AUTO if automatic else PhaseAttempt.Trigger.RESUME,
            auto_resumes=F("auto_resumes") + (1 if automatic else 0),
        )
        details: dict = {"automatic": automatic}
        if skipped:
            details["skipped"] = [phase.label for phase in skipped]
            if skip_reason:
                details["skip_reason"] = skip_reason
        record("operation.resumed", actor=user, obj=locked, cluster=locked.cluster, details=details)
        _skip_phases(locked, skipped, user=user, reason=skip_reason)
        who = "automatically" if automatic else f"by {actor_label(user)}"
        append_system_event(
            locked.pk,
            f"Operation resumed {who}; it continues from the first phase that has not finished.",
            kind=Event.Kind.STATUS,
            level=Event.Level.INFO,
            data={"status": Operation.Status.QUEUED, "automatic": automatic},
        )
        enqueue(locked)
    locked.refresh_from_db()
    return locked


def cancel_operation(operation: Operation, *, user=None) -> Operation:
    """Cancel a queued operation at once, or ask the runner of a running one to stop.

    The runner notices within OPERATION_CANCEL_POLL_SECONDS, sets its ``cancel_event`` (which
    stops remote commands) and ends the running phases and the operation as cancelled.
    A refused cancel (the operation has ended) is audited as a refused cancel request.
    """
    with refusals("operation.cancel_requested", OperationStateError, actor=user, obj=operation):
        return _cancel(operation, user=user)


def _cancel(operation: Operation, *, user) -> Operation:
    who = actor_label(user)
    with transaction.atomic():
        locked = Operation.objects.select_for_update().select_related("cluster").get(pk=operation.pk)
        if locked.status == Operation.Status.QUEUED:
            message = f"Cancelled by {who} before it started."
            Operation.objects.filter(pk=locked.pk).update(
                status=Operation.Status.CANCELLED,
                finished_at=timezone.now(),
                error=message,
                cancel_requested_at=timezone.now(),
                cancel_requested_by=user if getattr(user, "pk", None) else None,
            )
            append_system_event(
                locked.pk,
                message,
                kind=Event.Kind.STATUS,
                level=Event.Level.WARNING,
                data={"status": Operation.Status.CANCELLED, "error": message, "by": who},
            )
            record(
                "operation.cancelled",
                actor=user,
                obj=locked,
                cluster=locked.cluster,
                details={"while": "queued"},
                outcome=END_OUTCOMES[Operation.Status.CANCELLED],
            )
            locked.status = Operation.Status.CANCELLED
            notify_finished(locked)
            # It may have been the head of its cluster's queue: the next one need not wait for the reaper.
            enqueue_next_waiting(locked)
        elif locked.status == Operation.Status.RUNNING:
            if locked.cancel_requested_at is None:
                # No event here: only the runner numbers the events of a running operation.
                Operation.objects.filter(pk=locked.pk).update(
                    cancel_requested_at=timezone.now(),
                    cancel_requested_by=user if getattr(user, "pk", None) else None,
                )
                record(
                    "operation.cancel_requested",
                    actor=user,
                    obj=locked,
                    cluster=locked.cluster,
                    details={"phase": locked.current_phase},
                )
        else:
            raise OperationStateError(
                f"only a queued or running operation can be cancelled; this one is {locked.status}"
            )
    locked.refresh_from_db()
    return locked


def append_system_event(
    operation_id: int, message: str, *, kind: str, level: str, data: dict, phase: str = "", group: str = ""
) -> int:
    """Write one event for an operation that no runner holds (reaper, queue, resume); returns its seq."""
    from operations.events import clean_data, clean_text, publish

    with transaction.atomic():
        op = Operation.objects.select_for_update().get(pk=operation_id)
        Operation.objects.filter(pk=operation_id).update(last_seq=F("last_seq") + 1)
        event = Event.objects.create(
            operation_id=operation_id,
            seq=op.last_seq + 1,
            created=timezone.now(),
            phase=phase,
            group=group,
            level=level,
            kind=kind,
            message=clean_text(message),
            data=clean_data(data),
        )
    message_ = event.as_message()
    transaction.on_commit(lambda: publish(operation_id, [message_]))
    return event.seq


def _auto_resumable(operation: Operation, interrupted: list[PhaseRun]) -> bool:
    """Resume by itself only if phases were cut short and every one of them says it is safe to
    re-run, within the limit. Anything else waits for a person."""
    if not interrupted or operation.auto_resumes >= settings.OPERATION_AUTO_RESUME_LIMIT:
        return False
    if operation.cancel_requested_at is not None:
        return False  # someone asked it to stop: never start it again behind their back
    try:
        kind = get_kind(operation.kind)
    except ValueError:
        return False
    return all(kind.spec(phase.name) is not None and kind.spec(phase.name).idempotent for phase in interrupted)


def interrupt(operation: Operation, reason: str) -> bool:
    """Mark a running operation whose worker is gone as interrupted. False if it moved on.

    If the phases it cut short are idempotent (and the limit allows), the operation is queued
    again at once, in the same transaction, with a new attempt for each of those phases.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = Operation.objects.filter(
            pk=operation.pk, status=Operation.Status.RUNNING, worker=operation.worker
        ).update(status=Operation.Status.INTERRUPTED, finished_at=now, error=reason)
        if not changed:
            return False
        operation.refresh_from_db()
        running = list(operation.phases.filter(status=PhaseRun.Status.RUNNING))
        for phase in running:
            PhaseRun.objects.filter(pk=phase.pk).update(status=PhaseRun.Status.FAILED, finished_at=now, error=reason)
        for phase in running:
            seq = append_system_event(
                operation.pk,
                reason,
                kind=Event.Kind.PHASE,
                level=Event.Level.ERROR,
                data={"status": PhaseRun.Status.FAILED, "error": reason, "attempt": phase.attempt},
                phase=phase.name,
                group=phase.group,
            )
            PhaseAttempt.objects.filter(phase=phase, status=PhaseAttempt.Status.RUNNING).update(
                status=PhaseAttempt.Status.INTERRUPTED, finished_at=now, error=reason, last_seq=seq
            )
        append_system_event(
            operation.pk,
            reason,
            kind=Event.Kind.STATUS,
            level=Event.Level.ERROR,
            data={"status": Operation.Status.INTERRUPTED, "error": reason},
        )
        record(
            "operation.interrupted",
            obj=operation,
            cluster=operation.cluster,
            details={"reason": reason},
            outcome=END_OUTCOMES[Operation.Status.INTERRUPTED],
        )
        enqueue_next_waiting(operation)
        if _auto_resumable(operation, running):
            log.warning("operation %s interrupted (%s); resuming it automatically", operation.pk, reason)
            resume_operation(operation, automatic=True)
            return True
        operation.status = Operation.Status.INTERRUPTED
        notify_finished(operation)
    log.warning("operation %s interrupted: %s", operation.pk, reason)
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed worker whose parent died too can linger as a zombie nobody reaps.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in {"Z", "X"}


def _requeue_due(operation: Operation, now) -> bool:
    # Each re-queue doubles the wait (up to 16x): a task that only sits behind busy workers
    # gets a few harmless duplicates (a duplicate finds the operation claimed and stops), not a flood.
    seen = operation.heartbeat_at or operation.created_at
    timeout = settings.OPERATION_QUEUE_TIMEOUT_SECONDS * 2 ** min(operation.requeues, 4)
    return now - seen > timedelta(seconds=timeout)


def enqueue_next_waiting(finished: Operation) -> None:
    """Queue the task of the oldest operation waiting for ``finished``'s cluster (on commit).

    Waiting tasks do not sleep in a worker; this wakes the next one up. The queued operation
    is read in the same transaction that ends ``finished``, so no wake-up is lost: a task that
    saw ``finished`` running is woken by it, one that did not could claim the cluster itself.
    """
    if not finished.mutating:
        return
    waiting = (
        Operation.objects.filter(cluster_id=finished.cluster_id, status=Operation.Status.QUEUED, mutating=True)
        .exclude(pk=finished.pk)
        .order_by("created_at", "id")
        .first()
    )
    if waiting is not None:
        # Its task is queued afresh: the lost-task clock starts again, or a reaper looking between
        # this commit and a worker's claim would take the long wait for a lost task.
        Operation.objects.filter(pk=waiting.pk, status=Operation.Status.QUEUED).update(heartbeat_at=timezone.now())
        enqueue(waiting)


def _waiting_for_cluster(operation: Operation) -> bool:
    """Whether the operation waits its turn: a mutating operation of its cluster runs, or an older
    one is queued. Only the head of a cluster's queue can be lost; the one ahead wakes the next
    when it ends (between one ending and the next being claimed, nothing runs, and the others
    behind must not be re-queued: a duplicate task could even claim the cluster out of turn)."""
    if not operation.mutating:
        return False
    # "Older" in enqueue_next_waiting's order: created_at, then id.
    older = Q(created_at__lt=operation.created_at) | Q(created_at=operation.created_at, pk__lt=operation.pk)
    ahead = Q(status=Operation.Status.RUNNING) | (Q(status=Operation.Status.QUEUED) & older)
    return (
        Operation.objects.filter(cluster_id=operation.cluster_id, mutating=True)
        .filter(ahead)
        .exclude(pk=operation.pk)
        .exists()
    )


def requeue_lost_operations() -> int:
    """Queue again the operations whose task nobody picked up within the queue timeout.

    An operation waiting behind a running operation of its cluster is not lost (that one queues
    it when it ends), so it is left alone.
    """
    now = timezone.now()
    requeued = 0
    for operation in Operation.objects.filter(status=Operation.Status.QUEUED).select_related("cluster"):
        if not _requeue_due(operation, now) or _waiting_for_cluster(operation):
            # An operation behind a running one of its cluster is not lost: that one wakes it.
            continue
        with transaction.atomic():
            # Only the reaper that moves heartbeat_at first re-queues (several may look at once).
            won = Operation.objects.filter(
                pk=operation.pk, status=Operation.Status.QUEUED, heartbeat_at=operation.heartbeat_at
            ).update(heartbeat_at=now, requeues=F("requeues") + 1)
            if not won:
                continue
            waited = int((now - (operation.heartbeat_at or operation.created_at)).total_seconds())
            message = (
                f"No worker picked up this operation's task for {waited} s (the queue may have lost it); "
                "queued it again."
            )
            append_system_event(
                operation.pk,
                message,
                kind=Event.Kind.LOG,
                level=Event.Level.WARNING,
                data={"requeues": operation.requeues + 1, "waited_seconds": waited},
            )
            record("operation.requeued", obj=operation, cluster=operation.cluster, details={"waited_seconds": waited})
            enqueue(operation)
        log.warning("operation %s: task not picked up for %s s; re-queued", operation.pk, waited)
        requeued += 1
    return requeued


def reap_operations() -> int:
    """Interrupt operations whose worker is dead (lease expired, or a dead pid on this host) and
    re-queue queued operations whose task was lost. Returns how many operations it changed."""
    now = timezone.now()
    lease = timedelta(seconds=settings.OPERATION_LEASE_SECONDS)
    host = socket.gethostname()
    reaped = 0
    for operation in Operation.objects.filter(status=Operation.Status.RUNNING).select_related("cluster"):
        worker_host, _, pid = operation.worker.rpartition(":")
        if worker_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            reason = (
                f"The worker process {operation.worker} that ran this operation is gone "
                f"(it stopped during phase {operation.current_phase or 'start'}). Resume the operation to continue."
            )
        elif operation.heartbeat_at is None or now - operation.heartbeat_at > lease:
            seen = operation.heartbeat_at.isoformat(timespec="seconds") if operation.heartbeat_at else "never"
            reason = (
                f"The worker {operation.worker} stopped renewing its lease (last heartbeat {seen}, "
                f"lease {duration_words(settings.OPERATION_LEASE_SECONDS)}) during phase "
                f"{operation.current_phase or 'start'}. "
                "Resume the operation to continue."
            )
        else:
            continue
        reaped += interrupt(operation, reason)
    return reaped + requeue_lost_operations()

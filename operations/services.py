"""Creating, queueing, resuming and reaping operations. Views and tasks call these."""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import record
from operations.models import Event, Operation, PhaseRun
from operations.registry import notify_finished, phases_for

log = logging.getLogger(__name__)


class OperationStateError(Exception):
    """The operation is not in a state that allows the requested change."""


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def enqueue(operation: Operation) -> None:
    """Queue the background task once the surrounding transaction has committed."""
    from django_q.tasks import async_task

    operation_id = operation.pk
    transaction.on_commit(
        lambda: async_task("operations.tasks.run_operation", operation_id, task_name=f"operation-{operation_id}")
    )


def start_operation(cluster, kind: str, *, user=None) -> Operation:
    """Record an operation with its planned phases, audit it, and queue it — all or nothing."""
    specs = phases_for(kind)
    with transaction.atomic():
        operation = Operation.objects.create(cluster=cluster, kind=kind, requested_by=user)
        PhaseRun.objects.bulk_create(
            PhaseRun(operation=operation, name=spec.name, description=spec.description, order=index)
            for index, spec in enumerate(specs)
        )
        record("operation.queued", actor=user, obj=operation, cluster=cluster, details={"kind": kind})
        enqueue(operation)
    return operation


def resume_operation(operation: Operation, *, user=None) -> Operation:
    """Queue a failed or interrupted operation again; finished phases are not re-run."""
    with transaction.atomic():
        locked = Operation.objects.select_for_update().get(pk=operation.pk)
        if locked.status not in (Operation.Status.FAILED, Operation.Status.INTERRUPTED):
            raise OperationStateError(f"only a failed or interrupted operation can be resumed; this one is {locked.status}")
        locked.phases.filter(status__in=[PhaseRun.Status.FAILED, PhaseRun.Status.RUNNING]).update(
            status=PhaseRun.Status.PENDING, error=""
        )
        Operation.objects.filter(pk=locked.pk).update(status=Operation.Status.QUEUED, error="", finished_at=None)
        record("operation.resumed", actor=user, obj=locked, cluster=locked.cluster)
        enqueue(locked)
    locked.refresh_from_db()
    return locked


def append_system_event(operation_id: int, message: str, *, kind: str, level: str, data: dict, phase: str = "") -> None:
    """Write one event for an operation that no runner holds (used by the reaper)."""
    with transaction.atomic():
        op = Operation.objects.select_for_update().get(pk=operation_id)
        Operation.objects.filter(pk=operation_id).update(last_seq=F("last_seq") + 1)
        event = Event.objects.create(
            operation_id=operation_id,
            seq=op.last_seq + 1,
            created=timezone.now(),
            phase=phase,
            level=level,
            kind=kind,
            message=message,
            data=data,
        )
    from operations.events import publish

    message_ = event.as_message()
    transaction.on_commit(lambda: publish(operation_id, [message_]))


def interrupt(operation: Operation, reason: str) -> bool:
    """Mark a running operation whose worker is gone as interrupted. False if it moved on."""
    now = timezone.now()
    with transaction.atomic():
        changed = Operation.objects.filter(
            pk=operation.pk, status=Operation.Status.RUNNING, worker=operation.worker
        ).update(status=Operation.Status.INTERRUPTED, finished_at=now, error=reason)
        if not changed:
            return False
        running = list(operation.phases.filter(status=PhaseRun.Status.RUNNING))
        for phase in running:
            PhaseRun.objects.filter(pk=phase.pk).update(status=PhaseRun.Status.FAILED, finished_at=now, error=reason)
        for phase in running:
            append_system_event(
                operation.pk, reason, kind=Event.Kind.PHASE, level=Event.Level.ERROR,
                data={"status": PhaseRun.Status.FAILED, "error": reason}, phase=phase.name,
            )
        append_system_event(
            operation.pk, reason, kind=Event.Kind.STATUS, level=Event.Level.ERROR,
            data={"status": Operation.Status.INTERRUPTED, "error": reason},
        )
        record("operation.interrupted", obj=operation, cluster=operation.cluster, details={"reason": reason})
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


def reap_operations() -> int:
    """Interrupt operations whose worker is dead: lease expired, or a dead pid on this host."""
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
                f"lease {settings.OPERATION_LEASE_SECONDS}s) during phase {operation.current_phase or 'start'}. "
                "Resume the operation to continue."
            )
        else:
            continue
        reaped += interrupt(operation, reason)
    return reaped

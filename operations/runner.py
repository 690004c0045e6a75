"""Runs one operation, phase by phase, in a django-q2 worker."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit.services import record
from operations.events import EventWriter, Heartbeat, LeaseLost
from operations.models import Event, Operation, PhaseRun
from operations.registry import notify_finished, phases_for
from operations.services import reap_operations, worker_identity

log = logging.getLogger(__name__)

# How often a queued operation re-checks the per-cluster lock while another one runs.
LOCK_POLL_SECONDS = 1.0


class PhaseError(Exception):
    """A phase failed for a reason the user can act on; the message is shown as is."""


@dataclass
class PhaseContext:
    operation: Operation
    phase: PhaseRun
    writer: EventWriter

    @property
    def cluster(self):
        return self.operation.cluster

    def log(self, message: str, level: str = Event.Level.INFO) -> None:
        self.writer.emit(message, phase=self.phase.name, level=level)


def _claim(operation_id: int, worker: str) -> tuple[Operation | None, str]:
    """Take the operation if it is queued and no other operation of its cluster is running.

    The cluster row is locked (PostgreSQL: SELECT … FOR UPDATE; SQLite: the IMMEDIATE
    transaction holds the database write lock), so two workers cannot both pass the check.
    """
    from clusters.models import Cluster

    with transaction.atomic():
        operation = Operation.objects.select_for_update().filter(pk=operation_id).first()
        if operation is None:
            return None, "gone"
        if operation.status != Operation.Status.QUEUED:
            return None, f"not queued ({operation.status})"
        Cluster.objects.select_for_update().get(pk=operation.cluster_id)
        busy = (
            Operation.objects.filter(cluster_id=operation.cluster_id, status=Operation.Status.RUNNING)
            .exclude(pk=operation.pk)
            .first()
        )
        if busy is not None:
            return None, f"waiting for operation #{busy.pk}"
        now = timezone.now()
        Operation.objects.filter(pk=operation.pk).update(
            status=Operation.Status.RUNNING, worker=worker, heartbeat_at=now, started_at=operation.started_at or now
        )
    operation.refresh_from_db()
    return operation, "claimed"


def run_operation(operation_id: int) -> str:
    """The django-q2 task. Returns a short outcome string (kept in the task result)."""
    reap_operations()
    worker = worker_identity()
    announced_wait = False
    while True:
        operation, reason = _claim(operation_id, worker)
        if operation is not None:
            break
        if not reason.startswith("waiting"):
            log.info("operation %s not run: %s", operation_id, reason)
            return reason
        if not announced_wait:
            log.info("operation %s %s", operation_id, reason)
            announced_wait = True
        time.sleep(LOCK_POLL_SECONDS)
        reap_operations()

    writer = EventWriter(operation)
    heartbeat = Heartbeat(writer)
    heartbeat.start()
    try:
        outcome = _run_phases(operation, writer)
    except LeaseLost:
        log.warning("operation %s: lease lost, stopping without further writes", operation_id)
        outcome = "lease lost"
    finally:
        heartbeat.stop()
    return outcome


def _set_phase(writer: EventWriter, phase: PhaseRun, status: str, *, error: str = "", message: str) -> None:
    now = timezone.now()
    updates: dict = {"status": status}
    if status == PhaseRun.Status.RUNNING:
        updates.update(started_at=now, finished_at=None, error="")
    else:
        updates.update(finished_at=now, error=error)
    PhaseRun.objects.filter(pk=phase.pk).update(**updates)
    for name, value in updates.items():
        setattr(phase, name, value)
    data = {"status": status}
    if error:
        data["error"] = error
    if phase.duration is not None:
        data["duration"] = round(phase.duration.total_seconds(), 3)
    level = Event.Level.ERROR if status == PhaseRun.Status.FAILED else Event.Level.INFO
    writer.emit(message, phase=phase.name, level=level, kind=Event.Kind.PHASE, data=data)
    writer.flush()


def _finish(operation: Operation, writer: EventWriter, status: str, error: str = "") -> None:
    level = Event.Level.ERROR if error else Event.Level.INFO
    data = {"status": status, "error": error} if error else {"status": status}
    writer.emit(error or f"Operation {status}.", kind=Event.Kind.STATUS, level=level, data=data)
    operation.status, operation.error = status, error

    def outcome() -> None:
        details = {"kind": operation.kind, "requested_by": operation.requested_by.username if operation.requested_by else None}
        if error:
            details["error"] = error
        record(f"operation.{status}", obj=operation, cluster=operation.cluster, details=details)
        notify_finished(operation)

    writer.flush(
        operation_updates={"status": status, "finished_at": timezone.now(), "error": error, "current_phase": ""},
        also=outcome,
    )


def _run_phases(operation: Operation, writer: EventWriter) -> str:
    specs = {spec.name: spec for spec in phases_for(operation.kind)}
    writer.emit(f"Operation started by worker {writer.worker}.", kind=Event.Kind.STATUS, data={"status": Operation.Status.RUNNING})
    writer.flush()
    for phase in operation.phases.order_by("order"):
        if phase.status in (PhaseRun.Status.SUCCEEDED, PhaseRun.Status.SKIPPED):
            continue
        spec = specs.get(phase.name)
        Operation.objects.filter(pk=operation.pk).update(current_phase=phase.name)
        if spec is None:
            error = f"phase {phase.name!r} is not known to this version of Kubeboard"
            _set_phase(writer, phase, PhaseRun.Status.FAILED, error=error, message=error)
            _finish(operation, writer, Operation.Status.FAILED, f"Phase {phase.name} failed: {error}")
            return "failed"
        _set_phase(writer, phase, PhaseRun.Status.RUNNING, message=f"Phase {phase.name} started: {spec.description}")
        context = PhaseContext(operation=operation, phase=phase, writer=writer)
        try:
            spec.run(context)
        except LeaseLost:
            raise
        except PhaseError as exc:
            error = str(exc)
        except Exception as exc:  # an unexpected failure still ends the phase cleanly, with the cause shown
            log.exception("operation %s phase %s crashed", operation.pk, phase.name)
            error = f"{type(exc).__name__}: {exc}"
            writer.emit(traceback.format_exc(limit=5), phase=phase.name, level=Event.Level.DEBUG)
        else:
            _set_phase(writer, phase, PhaseRun.Status.SUCCEEDED, message=f"Phase {phase.name} done.")
            continue
        _set_phase(writer, phase, PhaseRun.Status.FAILED, error=error, message=f"Phase {phase.name} failed: {error}")
        _finish(operation, writer, Operation.Status.FAILED, f"Phase {phase.name} failed: {error}")
        return "failed"
    _finish(operation, writer, Operation.Status.SUCCEEDED)
    return "succeeded"

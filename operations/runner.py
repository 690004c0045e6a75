"""Runs one operation, phase by phase, in a django-q2 worker.

Order: the plan's order (``PhaseRun.order``). Cluster-level phases (group "") run one at a time
and act as barriers; each run of consecutive grouped phases is a block whose groups run in
threads, at most the kind's ``max_parallel_groups`` at once, phases in order within a group.

When something goes wrong:
* a cluster-level phase fails: the operation stops and ends failed;
* a group fails and the bound is 1 (control planes, etcd members): nothing else starts; the
  operation ends failed;
* a group fails and the bound is > 1 (worker joins): the other groups of the block carry on to
  their end; then the operation ends failed, and a resume re-runs only what has not succeeded;
* a cancel request: every running phase sees ``cancel_event`` and ends cancelled, nothing new
  starts, the operation ends cancelled;
* the worker dies: the reaper marks the operation interrupted (services.interrupt).
"""

from __future__ import annotations

import logging
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from audit.services import record
from core.phases import OperationCancelled, PhaseError  # phases import them from here too
from kubeadm.output import parse_line
from operations.events import EventWriter, Heartbeat, LeaseLost
from operations.formatting import settings_changes
from operations.models import Event, Operation, PhaseAttempt, PhaseRun
from operations.registry import OperationKind, UnknownKind, get_kind, notify_finished
from operations.services import END_OUTCOMES, enqueue_next_waiting, reap_operations, worker_identity

log = logging.getLogger(__name__)


class PhaseContext:
    """What a phase's code gets: the operation, its phase row, the node, and ways to report."""

    def __init__(
        self,
        run: Run,
        phase: PhaseRun,
        attempt: int,
        previous_attempt: PhaseAttempt | None,
        settings: dict | None = None,
    ) -> None:
        self.operation: Operation = run.operation
        self.phase = phase
        self.node = phase.node
        self.params: dict = run.operation.params
        self.attempt = attempt  # 1 on the first run; a retry after a crash sees 2, 3, ...
        self.previous_attempt = previous_attempt  # its status, worker, error: what to clean up
        self.cancel_event: threading.Event = run.cancel_event
        self.exit_status: int | None = None  # set it to the remote command's exit status
        self.writer: EventWriter = run.writer
        # kubeadm --skip-phases names skipped in this phase's group, for phases that run a composite command.
        self.skip_phases: list[str] = run.skipped_names(phase.group)
        # The settings this attempt runs with (the kind's ``settings``, recorded with the attempt).
        self.settings: dict = settings or {}

    @property
    def cluster(self):
        return self.operation.cluster

    @property
    def job(self) -> str:
        """A remote job name stable across attempts of this phase (SSH transport's ``job=``), so
        a retry finds a leftover process of a crashed attempt and kills it first."""
        return f"kubeboard-op{self.operation.pk}-phase{self.phase.pk}"

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise OperationCancelled(f"operation {self.operation.pk} was cancelled")

    def log(self, message: str, level: str = Event.Level.INFO, **data) -> None:
        self.writer.emit(message, phase=self.phase.name, group=self.phase.group, level=level, data=data)

    def output_line(self, line: str) -> None:
        """One line of remote or kubeadm output as a typed event (level and source from kubeadm.output)."""
        parsed = parse_line(line)
        data = {}
        if parsed.check:
            data["check"] = parsed.check
        if parsed.location:
            data["location"] = parsed.location
        if parsed.summary:
            data["summary"] = True  # restates the errors above it: the page does not count it again
        self.writer.emit(
            line.rstrip("\r\n"),
            phase=self.phase.name,
            group=self.phase.group,
            level=parsed.level,
            source=parsed.source,
            data=data,
        )


def _claim(operation_id: int, worker: str) -> tuple[Operation | None, str]:
    """Take the operation if it is queued and no other mutating operation of its cluster runs.

    The cluster row is locked (PostgreSQL: SELECT … FOR UPDATE; SQLite: the IMMEDIATE
    transaction holds the database write lock), so two workers cannot both pass the check.
    A task that must wait refreshes the row's heartbeat, so the reaper knows it is not lost.
    """
    # The cluster model through the operation's own reference: operations sits below the clusters app.
    clusters = Operation._meta.get_field("cluster").related_model

    with transaction.atomic():
        operation = Operation.objects.select_for_update().filter(pk=operation_id).first()
        if operation is None:
            return None, "gone"
        if operation.status != Operation.Status.QUEUED:
            return None, f"not queued ({operation.status})"
        clusters.objects.select_for_update().get(pk=operation.cluster_id)
        now = timezone.now()
        if operation.mutating:
            busy = (
                Operation.objects.filter(
                    cluster_id=operation.cluster_id, status=Operation.Status.RUNNING, mutating=True
                )
                .exclude(pk=operation.pk)
                .first()
            )
            if busy is not None:
                Operation.objects.filter(pk=operation.pk).update(heartbeat_at=now)
                return None, f"waiting for operation #{busy.pk}"
        Operation.objects.filter(pk=operation.pk).update(
            status=Operation.Status.RUNNING, worker=worker, heartbeat_at=now, started_at=operation.started_at or now
        )
    operation = Operation.objects.select_related("cluster", "requested_by").get(pk=operation_id)
    return operation, "claimed"


def run_operation(operation_id: int) -> str:
    """The django-q2 task. Returns a short outcome string (kept in the task result).

    A task whose cluster is busy returns at once instead of holding a worker process while it
    waits (which would starve other clusters' operations): the operation stays queued, and the
    operation it waits for queues it again when it ends (``services.enqueue_next_waiting``).
    """
    worker = worker_identity()
    operation, reason = _claim(operation_id, worker)
    if operation is None:
        if reason.startswith("waiting"):
            # The operation we wait for may belong to a dead worker: free the lock if so.
            reap_operations()
            operation, reason = _claim(operation_id, worker)
        if operation is None:
            log.info("operation %s not run now: %s", operation_id, reason)
            return reason

    writer = EventWriter(operation)
    heartbeat = Heartbeat(writer)
    heartbeat.start()
    run = Run(operation, writer)
    watcher = CancelWatcher(run)
    watcher.start()
    crash: Exception | None = None
    try:
        outcome = run.execute()
    except LeaseLost:
        log.warning("operation %s: lease lost, stopping without further writes", operation_id)
        outcome = "lease lost"
    except Exception as exc:  # a bug or a lost database: end the run in a state a person can resume
        log.exception("operation %s: the runner stopped on an unexpected error", operation_id)
        crash, outcome = exc, "crashed"
    finally:
        watcher.stop()
        heartbeat.stop()
    if crash is not None:
        _interrupt_after_crash(operation, writer, crash)
    return outcome


def _interrupt_after_crash(operation: Operation, writer: EventWriter, crash: Exception) -> None:
    """Close the running phases and mark the operation interrupted now, rather than leaving it
    "running" until its lease runs out."""
    from operations.services import interrupt

    try:
        writer.flush()
    except Exception:
        log.warning("operation %s: could not store its last events", operation.pk, exc_info=True)
    try:
        interrupt(operation, f"The runner stopped on an unexpected error ({type(crash).__name__}: {crash}).")
    except Exception:
        log.exception("operation %s: could not mark it interrupted; the reaper will", operation.pk)


class CancelWatcher(threading.Thread):
    """Turns a cancel request in the database into the run's ``cancel_event`` within a poll
    interval, even while every phase thread blocks on a remote command."""

    def __init__(self, run: Run) -> None:
        super().__init__(name=f"cancel-watch-{run.operation.pk}", daemon=True)
        self.run_ = run
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def run(self) -> None:
        interval = settings.OPERATION_CANCEL_POLL_SECONDS
        try:
            while not self._stop_event.wait(interval):
                try:
                    row = (
                        Operation.objects.filter(pk=self.run_.operation.pk)
                        .values_list("cancel_requested_at", "cancel_requested_by__username")
                        .first()
                    )
                except Exception:
                    log.warning("cancel check of operation %s failed", self.run_.operation.pk, exc_info=True)
                    close_old_connections()
                    continue
                if row is not None and row[0] is not None:
                    self.run_.request_cancel(row[1] or "system")
                    return
        finally:
            connections.close_all()


class Run:
    """The state of one execution of an operation by this worker."""

    def __init__(self, operation: Operation, writer: EventWriter) -> None:
        self.operation = operation
        self.writer = writer
        self.cancel_event = threading.Event()
        self.cancelled_by = ""
        self.kind: OperationKind | None = None
        self._skipped: dict[str, list[str]] = {}
        self.cancelled_phases: list[str] = []

    def request_cancel(self, who: str) -> None:
        if self.cancel_event.is_set():
            return
        self.cancelled_by = who
        self.cancel_event.set()
        try:
            self.writer.emit(
                f"Cancel requested by {who}; stopping the running phase(s).",
                level=Event.Level.WARNING,
                data={"cancel": True, "by": who},
            )
        except LeaseLost:
            pass

    def skipped_names(self, group: str) -> list[str]:
        return list(self._skipped.get(group, []))

    # --- the whole operation ---------------------------------------------------------------

    def execute(self) -> str:
        operation = self.operation
        self.writer.emit(
            f"Operation started by worker {self.writer.worker}.",
            kind=Event.Kind.STATUS,
            data={"status": Operation.Status.RUNNING},
        )
        self.writer.flush()
        try:
            self.kind = get_kind(operation.kind)
        except UnknownKind as exc:
            return self.finish(Operation.Status.FAILED, f"{exc}; this version of Kubeboard cannot run it.")
        phases = list(operation.phases.select_related("node").order_by("order"))
        for phase in phases:
            if phase.status == PhaseRun.Status.SKIPPED:
                self._skipped.setdefault(phase.group, []).append(phase.name)
        for block in _blocks(phases):
            if self.cancel_event.is_set():
                return self.finish_cancelled()
            if isinstance(block, PhaseRun):
                if block.status in PhaseRun.DONE_STATUSES:
                    continue
                status = self.run_phase(block)
                if status == PhaseRun.Status.CANCELLED:
                    return self.finish_cancelled()
                if status == PhaseRun.Status.FAILED:
                    return self.finish(Operation.Status.FAILED, f"Phase {block.label} failed: {block.error}")
                continue
            failed = self.run_block(block)
            if self.cancel_event.is_set():
                return self.finish_cancelled()
            if failed:
                summary = "; ".join(f"phase {phase.label} failed: {phase.error}" for phase in failed)
                return self.finish(Operation.Status.FAILED, summary[0].upper() + summary[1:])
        if self.cancel_event.is_set():
            return self.finish_cancelled()
        return self.finish(Operation.Status.SUCCEEDED)

    def finish_cancelled(self) -> str:
        who = self.cancelled_by or "system"
        stopped = ", ".join(self.cancelled_phases)
        where = f" during phase {stopped}" if stopped else ""
        return self.finish(Operation.Status.CANCELLED, f"Cancelled by {who}{where}.")

    def finish(self, status: str, error: str = "") -> str:
        operation = self.operation
        level = (
            Event.Level.ERROR
            if status == Operation.Status.FAILED
            else (Event.Level.WARNING if error else Event.Level.INFO)
        )
        data = {"status": status, "error": error} if error else {"status": status}
        self.writer.emit(error or f"Operation {status}.", kind=Event.Kind.STATUS, level=level, data=data)
        operation.status, operation.error = status, error

        def outcome() -> None:
            requester = operation.requested_by.username if operation.requested_by else None
            details = {"kind": operation.kind, "requested_by": requester}
            if error:
                details["error"] = error
            record(
                f"operation.{status}",
                obj=operation,
                cluster=operation.cluster,
                details=details,
                outcome=END_OUTCOMES[status],
            )
            notify_finished(operation)
            enqueue_next_waiting(operation)

        self.writer.flush(
            operation_updates={"status": status, "finished_at": timezone.now(), "error": error, "current_phase": ""},
            also=outcome,
        )
        return status

    # --- groups ------------------------------------------------------------------------------

    def run_block(self, groups: dict[str, list[PhaseRun]]) -> list[PhaseRun]:
        """Run the groups of one block; returns the phases that failed."""
        todo = {
            group: phases
            for group, phases in groups.items()
            if any(phase.status not in PhaseRun.DONE_STATUSES for phase in phases)
        }
        bound = self.kind.parallel_groups(self.operation)
        failed: list[PhaseRun] = []
        if bound == 1 or len(todo) <= 1:
            for phases in todo.values():
                failure = self.run_group(phases)
                if failure is not None:
                    failed.append(failure)
                    break  # one at a time: stop at the first failure
                if self.cancel_event.is_set():
                    break
            return failed
        with ThreadPoolExecutor(max_workers=min(bound, len(todo)), thread_name_prefix=f"op{self.operation.pk}") as pool:
            futures = [pool.submit(self._group_thread, phases) for phases in todo.values()]
            errors: list[BaseException] = []
            for future in futures:
                try:
                    failure = future.result()
                except BaseException as exc:  # collected: every thread must end before we decide
                    errors.append(exc)
                    continue
                if failure is not None:
                    failed.append(failure)
        for exc in errors:
            if isinstance(exc, LeaseLost):
                raise exc
        if errors:
            raise errors[0]
        return sorted(failed, key=lambda phase: phase.order)

    def _group_thread(self, phases: list[PhaseRun]) -> PhaseRun | None:
        try:
            return self.run_group(phases)
        except LeaseLost:
            # Somebody else owns the operation now: stop every phase of ours.
            self.cancel_event.set()
            raise
        finally:
            connections.close_all()

    def run_group(self, phases: list[PhaseRun]) -> PhaseRun | None:
        """Run one group's phases in order; returns the phase that failed, if one did."""
        for phase in phases:
            if phase.status in PhaseRun.DONE_STATUSES:
                continue
            if self.cancel_event.is_set():
                return None
            status = self.run_phase(phase)
            if status == PhaseRun.Status.FAILED:
                return phase
            if status == PhaseRun.Status.CANCELLED:
                return None
        return None

    # --- one phase ---------------------------------------------------------------------------

    def run_phase(self, phase: PhaseRun) -> str:
        spec = self.kind.spec(phase.name)
        number = phase.attempt + 1
        previous = phase.attempts.order_by("-number").first() if phase.attempt else None
        if number == 1:
            trigger = PhaseAttempt.Trigger.START
        else:
            trigger = self.operation.resume_trigger or PhaseAttempt.Trigger.RESUME
        where = f" on {phase.group}" if phase.group else ""
        # Read now, not when the operation was queued: a person may have changed them to fix
        # what made the last attempt fail (an ignore list, a method) before resuming.
        settings = self.kind.attempt_settings(self.operation, phase)
        changes = settings_changes(previous.settings or {}, settings) if previous is not None else []
        message = f"Phase {phase.name}{where} started: {phase.description}"
        if changes:
            message += f" (attempt {number} runs with changed settings: {'; '.join(changes)})"
        self._phase_event(
            phase,
            PhaseRun.Status.RUNNING,
            message,
            number=number,
            trigger=trigger,
            settings=settings,
            changes=changes,
        )
        if spec is None:
            error = f"phase {phase.name!r} is not known to this version of Kubeboard"
            self._phase_event(phase, PhaseRun.Status.FAILED, error, number=number, error=error)
            return PhaseRun.Status.FAILED
        context = PhaseContext(self, phase, number, previous, settings)
        error, hint, exit_status = "", "", None
        try:
            spec.run(context)
        except LeaseLost:
            raise
        except Exception as exc:
            exit_status = getattr(exc, "exit_status", None)
            if self.cancel_event.is_set():
                # Whatever the phase raised once cancelled (OperationCancelled, the SSH
                # transport's CommandCancelled, ...) is the cancel taking effect.
                status, error = PhaseRun.Status.CANCELLED, f"cancelled by {self.cancelled_by or 'system'}"
            elif isinstance(exc, OperationCancelled):
                status, error = PhaseRun.Status.CANCELLED, str(exc)
            elif isinstance(exc, PhaseError):
                status, error, hint = PhaseRun.Status.FAILED, exc.message, exc.hint
            else:
                # An unexpected failure still ends the phase cleanly, with the cause shown.
                log.exception("operation %s phase %s crashed", self.operation.pk, phase.label)
                status, error = PhaseRun.Status.FAILED, f"{type(exc).__name__}: {exc}"
                hint = str(getattr(exc, "hint", "") or "")
                self.writer.emit(
                    traceback.format_exc(limit=5), phase=phase.name, group=phase.group, level=Event.Level.DEBUG
                )
        else:
            status = PhaseRun.Status.SUCCEEDED
        if exit_status is None:
            exit_status = context.exit_status
        if status == PhaseRun.Status.SUCCEEDED:
            message = f"Phase {phase.name}{where} done."
        elif status == PhaseRun.Status.CANCELLED:
            message = f"Phase {phase.name}{where} cancelled."
            self.cancelled_phases.append(f"{phase.name}{where}")
        else:
            message = f"Phase {phase.name}{where} failed: {error}"
        self._phase_event(phase, status, message, number=number, error=error, hint=hint, exit_status=exit_status)
        return status

    def _phase_event(
        self,
        phase: PhaseRun,
        status: str,
        message: str,
        *,
        number: int,
        trigger: str = "",
        error: str = "",
        hint: str = "",
        exit_status: int | None = None,
        settings: dict | None = None,
        changes: list[str] | None = None,
    ) -> None:
        """Record a phase's new state: the event, the PhaseRun and its attempt commit together."""
        now = timezone.now()
        running = status == PhaseRun.Status.RUNNING
        updates: dict = {"status": status, "attempt": number}
        if running:
            updates.update(started_at=now, finished_at=None, error="", hint="")
        else:
            updates.update(finished_at=now, error=error, hint=hint)
        for name, value in updates.items():
            setattr(phase, name, value)
        data: dict = {"status": status, "attempt": number}
        if phase.node_id:
            data["node"] = phase.node.name if phase.node else phase.node_id
        if error:
            data["error"] = error
        if hint:
            data["hint"] = hint
        if exit_status is not None:
            data["exit_status"] = exit_status
        if phase.duration is not None:
            data["duration"] = round(phase.duration.total_seconds(), 3)
        if settings:
            data["settings"] = settings
        if changes:
            data["changes"] = changes
        worker = self.writer.worker
        operation_id = self.operation.pk
        label = f"{phase.name} on {phase.group}" if phase.group else phase.name

        def commit(seq: int) -> None:
            PhaseRun.objects.filter(pk=phase.pk).update(**updates)
            if running:
                Operation.objects.filter(pk=operation_id).update(current_phase=label)
                PhaseAttempt.objects.create(
                    phase_id=phase.pk,
                    number=number,
                    trigger=trigger or PhaseAttempt.Trigger.START,
                    status=PhaseAttempt.Status.RUNNING,
                    started_at=now,
                    worker=worker,
                    first_seq=seq,
                    settings=settings or {},
                    changes=changes or [],
                )
            else:
                PhaseAttempt.objects.filter(phase_id=phase.pk, number=number).update(
                    status=status,
                    finished_at=now,
                    error=error,
                    hint=hint,
                    exit_status=exit_status,
                    last_seq=seq,
                )

        level = {PhaseRun.Status.FAILED: Event.Level.ERROR, PhaseRun.Status.CANCELLED: Event.Level.WARNING}.get(
            status, Event.Level.INFO
        )
        self.writer.emit(
            message, phase=phase.name, group=phase.group, level=level, kind=Event.Kind.PHASE, data=data, also=commit
        )
        self.writer.flush()


def _blocks(phases: list[PhaseRun]) -> list[PhaseRun | dict[str, list[PhaseRun]]]:
    """Split the plan: a cluster-level phase alone, consecutive grouped phases into one block
    (group -> its phases in order, groups in order of first appearance)."""
    blocks: list[PhaseRun | dict[str, list[PhaseRun]]] = []
    current: dict[str, list[PhaseRun]] | None = None
    for phase in phases:
        if not phase.group:
            blocks.append(phase)
            current = None
            continue
        if current is None:
            current = {}
            blocks.append(current)
        current.setdefault(phase.group, []).append(phase)
    return blocks

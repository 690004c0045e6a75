from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from core.models import AppendOnlyModel, TimedModel


class Operation(TimedModel):
    """One run of an operation kind on a cluster. ``kind`` names a kind in ``operations.registry``
    (a free string: a new kind needs no migration)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    RESUMABLE_STATUSES = (Status.FAILED, Status.INTERRUPTED, Status.CANCELLED)

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    # Copied from the kind when queued: mutating operations of one cluster never run together.
    mutating = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    current_phase = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    # Which worker holds the operation, and when it last said it is alive (the lease). While
    # queued, heartbeat_at is when the task was (re)queued or last seen waiting for the cluster.
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_seq = models.BigIntegerField(default=0)
    # Set by a cancel request; the runner's watcher turns it into its cancel_event.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # How the latest resume came about ("resume" by a person, "auto" after a lost worker):
    # the attempts it starts carry it as their trigger.
    resume_trigger = models.CharField(max_length=8, blank=True)
    requeues = models.PositiveIntegerField(default=0)  # times the reaper re-queued a lost task
    auto_resumes = models.PositiveIntegerField(default=0)  # automatic resumes after a lost worker

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} on {self.cluster.name}"

    def get_absolute_url(self) -> str:
        return reverse("operations:detail", args=[self.pk])

    def get_kind_display(self) -> str:
        from operations.registry import label_for

        return label_for(self.kind)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def is_resumable(self) -> bool:
        return self.status in self.RESUMABLE_STATUSES


class PhaseRun(TimedModel):
    """One planned phase of an operation; ``status`` is its current state, ``attempts`` its history."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    DONE_STATUSES = (Status.SUCCEEDED, Status.SKIPPED)

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="phases")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    order = models.PositiveIntegerField()
    group = models.CharField(max_length=100, blank=True)  # "" = cluster-level
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="phase_runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveIntegerField(default=0)  # number of the latest attempt (0: never run)
    error = models.TextField(blank=True)
    hint = models.TextField(blank=True)  # what the user should do next
    skip_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["operation", "order"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "order"], name="unique_phase_order"),
            models.UniqueConstraint(fields=["operation", "group", "name"], name="unique_phase_name_in_group"),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id}:{self.label}"

    @property
    def label(self) -> str:
        """``name`` for a cluster-level phase, ``group:name`` otherwise (also the skip syntax)."""
        return f"{self.group}:{self.name}" if self.group else self.name


class PhaseAttempt(TimedModel):
    """One try of a phase. A retry or resume adds a row; rows are never overwritten once ended."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        INTERRUPTED = "interrupted", "Interrupted"

    class Trigger(models.TextChoices):
        START = "start", "First run"
        RESUME = "resume", "Resumed"
        AUTO = "auto", "Automatic retry"

    phase = models.ForeignKey(PhaseRun, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.START)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    exit_status = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    hint = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # The events of this attempt lie between these sequence numbers (other groups' events may
    # interleave; filter by the event's phase and group).
    first_seq = models.BigIntegerField(null=True, blank=True)
    last_seq = models.BigIntegerField(null=True, blank=True)
    # The settings this attempt ran with (the kind's ``settings``, read when it started), and
    # what differed from the attempt before it: a resume after changing a setting shows it.
    settings = models.JSONField(default=dict, blank=True)
    changes = models.JSONField(default=list, blank=True)

    TEAM_PATH = "phase__operation__cluster__team"

    class Meta:
        ordering = ["phase", "number"]
        constraints = [models.UniqueConstraint(fields=["phase", "number"], name="unique_attempt_number")]

    def __str__(self) -> str:
        return f"{self.phase} attempt {self.number}"


class Event(AppendOnlyModel):
    """One line of an operation's story. ``seq`` is assigned by the operation's only runner."""

    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    class Kind(models.TextChoices):
        LOG = "log"  # a line of output
        PHASE = "phase"  # a phase changed state; data = {"status", "error"?, "hint"?, "attempt", ...}
        STATUS = "status"  # the operation changed state; data = {"status", "error"?}

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    created = models.DateTimeField()
    phase = models.CharField(max_length=64, blank=True)
    group = models.CharField(max_length=100, blank=True)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.LOG)
    # Who spoke: kubeadm's step prefix ("certs", "preflight"), "klog", or "" for Kubeboard itself.
    source = models.CharField(max_length=64, blank=True)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    TEAM_PATH = "operation__cluster__team"

    class Meta:
        ordering = ["operation", "seq"]
        constraints = [models.UniqueConstraint(fields=["operation", "seq"], name="unique_event_seq")]

    def __str__(self) -> str:
        return f"{self.operation_id}#{self.seq} {self.message[:60]}"

    def as_message(self) -> dict:
        return {
            "seq": self.seq,
            "time": self.created.isoformat(),
            "phase": self.phase,
            "group": self.group,
            "level": self.level,
            "kind": self.kind,
            "source": self.source,
            "message": self.message,
            "data": self.data,
        }

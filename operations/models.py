from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from core.models import AppendOnlyModel, TimedModel


class Operation(TimedModel):
    class Kind(models.TextChoices):
        PREPARE_IDENTITY = "prepare-identity", "Prepare cluster identity"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    current_phase = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    # Which worker holds the operation, and when it last said it is alive (the lease).
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_seq = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} on {self.cluster.name}"

    def get_absolute_url(self) -> str:
        return reverse("operations:detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class PhaseRun(TimedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="phases")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    order = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["operation", "order"]
        constraints = [
            models.UniqueConstraint(fields=["operation", "order"], name="unique_phase_order"),
            models.UniqueConstraint(fields=["operation", "name"], name="unique_phase_name"),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id}:{self.name}"


class Event(AppendOnlyModel):
    """One line of an operation's story. ``seq`` is assigned by the operation's only runner."""

    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    class Kind(models.TextChoices):
        LOG = "log"  # a line of output
        PHASE = "phase"  # a phase changed state; data = {"status", "error"?}
        STATUS = "status"  # the operation changed state; data = {"status", "error"?}

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    created = models.DateTimeField()
    phase = models.CharField(max_length=64, blank=True)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.LOG)
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
            "level": self.level,
            "kind": self.kind,
            "message": self.message,
            "data": self.data,
        }

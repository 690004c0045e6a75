"""Model building blocks shared by Kubeboard's apps."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models


class AppendOnlyError(Exception):
    """Audit records and operation events are never changed or deleted."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only")


class AppendOnlyModel(models.Model):
    """Rows are written once; the ORM refuses to change or delete them (cascades still work)."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only")


class TimedModel(models.Model):
    """Something that starts and finishes: an operation or one of its phases."""

    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class TeamRole(models.TextChoices):
    """What a member may do in a team's clusters; each role includes the ones before it."""

    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


class TeamMembership(models.Model):
    """A user's role in a team. A team is a Django auth ``Group``; clusters belong to one."""

    team = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships")
    role = models.CharField(max_length=16, choices=TeamRole.choices, default=TeamRole.VIEWER)

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="unique_team_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.get_role_display()})"


class WorkerHeartbeat(models.Model):
    """A background worker process saying it is alive and reaches the database and Redis.

    Written every ``WORKER_HEARTBEAT_SECONDS`` by each django-q2 worker process
    (``core.heartbeat``); ``/readyz`` wants at least one fresher than
    ``WORKER_HEARTBEAT_STALE_SECONDS``. A worker that loses the database or Redis stops writing.
    """

    worker = models.CharField(max_length=200, unique=True)  # host:pid, as in Operation.worker
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.worker} (seen {self.seen_at:%Y-%m-%d %H:%M:%S})"

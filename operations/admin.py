"""Operations are started, resumed and cancelled in the UI (services with the cluster lock and
audit); here they are read-only and scoped."""

from django.contrib import admin
from django_q.models import Failure, OrmQ, Schedule, Success

from audit.admin_mixins import AuditedAdmin
from core.admin_mixins import ReadOnlyAdmin, ReadOnlyInline
from operations.models import Event, Operation, PhaseAttempt, PhaseRun


class PhaseRunInline(ReadOnlyInline):
    model = PhaseRun
    fields = ("order", "group", "name", "status", "attempt", "started_at", "finished_at", "error")
    readonly_fields = fields


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = ("id", "cluster", "kind", "status", "current_phase", "requested_by", "created_at", "finished_at")
    list_filter = ("status", "kind")
    inlines = [PhaseRunInline]


@admin.register(PhaseRun)
class PhaseRunAdmin(ReadOnlyAdmin):
    list_display = ("operation", "order", "group", "name", "status", "started_at", "finished_at")
    list_filter = ("status", "name")


@admin.register(PhaseAttempt)
class PhaseAttemptAdmin(ReadOnlyAdmin):
    list_display = ("phase", "number", "trigger", "status", "started_at", "finished_at")
    list_filter = ("status", "trigger")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("operation", "seq", "created", "phase", "level", "kind", "message")
    list_filter = ("level", "kind")
    search_fields = ("message",)


def _audit_registered_admin(model) -> None:
    """Keep a third-party screen, but make every change through it write one audit record."""
    if admin.site.is_registered(model):
        base = type(admin.site._registry[model])
        admin.site.unregister(model)
        admin.site.register(model, type(f"Audited{base.__name__}", (AuditedAdmin, base), {}))


# django-q2's schedules (the token sweep, token sync, audit checkpoints), task results and queue:
# editable for superusers as django-q2 offers them, but no longer silently (a disabled sweep or a
# deleted queued task changes what Kubeboard does).
for _model in (Schedule, Success, Failure, OrmQ):
    _audit_registered_admin(_model)

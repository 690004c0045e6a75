from django.contrib import admin

from core.admin_mixins import ReadOnlyAdmin
from operations.models import Event, Operation, PhaseRun


class PhaseRunInline(admin.TabularInline):
    model = PhaseRun
    extra = 0
    can_delete = False
    fields = ("order", "name", "status", "started_at", "finished_at", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ("id", "cluster", "kind", "status", "current_phase", "requested_by", "created_at", "finished_at")
    list_filter = ("status", "kind", "cluster")
    readonly_fields = (
        "cluster", "kind", "status", "requested_by", "created_at", "started_at", "finished_at",
        "current_phase", "error", "worker", "heartbeat_at", "last_seq",
    )
    inlines = [PhaseRunInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(PhaseRun)
class PhaseRunAdmin(ReadOnlyAdmin):
    list_display = ("operation", "order", "name", "status", "started_at", "finished_at")
    list_filter = ("status", "name")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("operation", "seq", "created", "phase", "level", "kind", "message")
    list_filter = ("level", "kind")
    search_fields = ("message",)

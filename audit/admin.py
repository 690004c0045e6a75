from django.contrib import admin

from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from core.admin_mixins import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "created", "actor_name", "action", "outcome", "object_repr", "cluster_name")
    list_filter = ("outcome",)
    search_fields = ("actor_name", "action", "object_repr", "cluster_name", "request_id")
    ordering = ("-id",)


class SuperuserOnlyReadOnlyAdmin(ReadOnlyAdmin):
    """Chain bookkeeping, outside any team: superusers only."""

    def get_queryset(self, request):
        qs = self.model._default_manager.all()
        return qs if request.user.is_superuser else qs.none()

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)


@admin.register(AuditChainHead)
class AuditChainHeadAdmin(SuperuserOnlyReadOnlyAdmin):
    list_display = ("count", "last_hash", "key_id")


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(SuperuserOnlyReadOnlyAdmin):
    list_display = ("seq", "created", "reason", "head")

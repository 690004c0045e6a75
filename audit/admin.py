from django.contrib import admin

from audit.models import AuditChainHead, AuditEvent
from core.admin_mixins import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created", "actor_name", "action", "object_repr", "cluster_name")
    list_filter = ("action",)
    search_fields = ("actor_name", "action", "object_repr", "cluster_name")
    readonly_fields = [f.name for f in AuditEvent._meta.fields]


@admin.register(AuditChainHead)
class AuditChainHeadAdmin(ReadOnlyAdmin):
    list_display = ("count", "last_hash")

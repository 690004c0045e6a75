"""Clusters are created and changed in the UI (forms, services, audit); here they are read-only
and scoped to the staff member's teams."""

from django.contrib import admin

from clusters.models import CertificateAuthority, Cluster, ClusterInventory, MachineInventory
from core.admin_mixins import ReadOnlyAdmin, ReadOnlyInline


class CertificateAuthorityInline(ReadOnlyInline):
    model = CertificateAuthority
    fields = ("name", "subject", "fingerprint_sha256", "not_after")
    readonly_fields = fields


@admin.register(Cluster)
class ClusterAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "kubernetes_version",
        "control_plane_endpoint",
        "endpoint_mode",
        "team",
        "status",
        "created_at",
    )
    list_filter = ("status", "kubernetes_version", "endpoint_mode")
    search_fields = ("name", "control_plane_endpoint", "endpoint_vip")
    inlines = [CertificateAuthorityInline]


@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(ReadOnlyAdmin):
    list_display = ("cluster", "name", "subject", "not_after")
    list_filter = ("name",)


@admin.register(ClusterInventory)
class ClusterInventoryAdmin(ReadOnlyAdmin):
    list_display = ("__str__",)


@admin.register(MachineInventory)
class MachineInventoryAdmin(ReadOnlyAdmin):
    list_display = ("__str__",)

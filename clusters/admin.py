from django.contrib import admin

from clusters.models import CertificateAuthority, Cluster


class CertificateAuthorityInline(admin.TabularInline):
    model = CertificateAuthority
    extra = 0
    can_delete = False
    fields = ("name", "subject", "fingerprint_sha256", "not_after", "private_key")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "kubernetes_version", "control_plane_endpoint", "team", "status", "created_at")
    list_filter = ("status", "team", "kubernetes_version")
    search_fields = ("name", "control_plane_endpoint")
    readonly_fields = ("status", "ca_pin_hash", "kubeadm_config", "created_by", "created_at", "updated_at")
    inlines = [CertificateAuthorityInline]


@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(admin.ModelAdmin):
    list_display = ("cluster", "name", "subject", "not_after", "private_key")
    list_filter = ("name",)
    # The private key is shown masked; the model field is not editable, so no form carries it.
    readonly_fields = (
        "cluster", "name", "subject", "fingerprint_sha256", "not_before", "not_after",
        "certificate_pem", "public_key_pem", "private_key", "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

from django.contrib import admin

from tokens.models import BootstrapToken


@admin.register(BootstrapToken)
class BootstrapTokenAdmin(admin.ModelAdmin):
    list_display = ("__str__", "cluster", "description", "status", "expires_at", "created_by")
    list_filter = ("status", "cluster")
    search_fields = ("token_id", "description")
    readonly_fields = ("token_id", "secret", "created_by", "created_at")

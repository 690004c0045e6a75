"""Tokens are created, rotated, revealed and revoked in the UI (services that talk to the
cluster and audit); here they are read-only, scoped, and secrets never shown."""

from django.contrib import admin

from core.admin_mixins import ReadOnlyAdmin
from tokens.models import BootstrapToken, CertificateKey, TokenPolicy, TokenSync


@admin.register(BootstrapToken)
class BootstrapTokenAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "cluster", "description", "status", "purpose", "expires_at", "created_by")
    list_filter = ("status", "purpose")
    search_fields = ("token_id", "description")


@admin.register(TokenPolicy)
class TokenPolicyAdmin(ReadOnlyAdmin):
    list_display = ("cluster", "keep_valid_token", "default_ttl", "max_ttl")


@admin.register(TokenSync)
class TokenSyncAdmin(ReadOnlyAdmin):
    list_display = ("cluster", "result", "last_success_at")


@admin.register(CertificateKey)
class CertificateKeyAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "cluster", "status", "expires_at")

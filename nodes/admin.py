"""Machines are added, changed and removed in the UI (write-only credentials, host-key
acceptance, audit); here they are read-only, scoped, and credentials show only set/not set."""

from django.contrib import admin

from core.admin_mixins import ReadOnlyAdmin
from nodes.models import ClusterSSHKey, Node


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ("name", "cluster", "address", "ssh_port", "ssh_user", "role", "status")
    list_filter = ("role", "status")
    search_fields = ("name", "address")


@admin.register(ClusterSSHKey)
class ClusterSSHKeyAdmin(ReadOnlyAdmin):
    list_display = ("cluster", "fingerprint", "created_at")

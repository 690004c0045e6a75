from django.contrib import admin

from nodes.models import Node


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "cluster", "address", "ssh_port", "ssh_user", "role", "status")
    list_filter = ("role", "status", "cluster")
    search_fields = ("name", "address")
    readonly_fields = ("ssh_private_key", "ssh_host_key", "created_at", "updated_at")

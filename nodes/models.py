from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.encryption import EncryptedTextField


class Node(models.Model):
    class Role(models.TextChoices):
        CONTROL_PLANE = "control-plane", "Control plane"
        WORKER = "worker", "Worker"

    class Status(models.TextChoices):
        NEW = "new", "New"
        REACHABLE = "reachable", "Reachable"
        UNREACHABLE = "unreachable", "Unreachable"
        JOINING = "joining", "Joining"
        JOINED = "joined", "Joined"
        FAILED = "failed", "Failed"

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=63)
    address = models.GenericIPAddressField()
    ssh_port = models.PositiveIntegerField(default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    ssh_user = models.CharField(max_length=32, default="root")
    ssh_private_key = EncryptedTextField(blank=True)
    # The host key pinned at first contact; a changed key is refused, never silently accepted.
    ssh_host_key = models.TextField(blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.WORKER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["cluster", "role", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="unique_node_name_per_cluster"),
            models.UniqueConstraint(fields=["cluster", "address"], name="unique_node_address_per_cluster"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name}"

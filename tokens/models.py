from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.encryption import EncryptedTextField


def default_usages() -> list[str]:
    return ["signing", "authentication"]


def default_groups() -> list[str]:
    return ["system:bootstrappers:kubeadm:default-node-token"]


class BootstrapToken(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="tokens")
    token_id = models.CharField(max_length=6)
    secret = EncryptedTextField()
    description = models.CharField(max_length=255, blank=True)
    usages = models.JSONField(default=default_usages)
    groups = models.JSONField(default=default_groups)
    ttl = models.DurationField(default=timedelta(hours=24))
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="tokens")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["cluster", "token_id"], name="unique_token_id_per_cluster")]
        permissions = [("reveal_bootstraptoken", "Can reveal a bootstrap token's secret")]

    def __str__(self) -> str:
        # The token id is public (it is the Secret's name); the secret part never appears.
        return f"{self.token_id}.{'*' * 16}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

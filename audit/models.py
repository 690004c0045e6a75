"""Append-only, hash-chained audit records.

Each record's hash covers its own content and the previous record's hash, so editing or
deleting any row breaks every hash after it; ``manage.py verify_audit`` finds the break.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db import models

from core.models import AppendOnlyModel


class AuditChainHead(models.Model):
    """One row, locked while appending so concurrent writers extend the chain in turn."""

    last_hash = models.CharField(max_length=64, default="")
    count = models.BigIntegerField(default=0)


class AuditEvent(AppendOnlyModel):
    GENESIS = "0" * 64

    created = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Denormalised so the record still says who and what after users or clusters are deleted.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    cluster_name = models.CharField(max_length=63, blank=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["cluster", "-id"])]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"

    def canonical(self) -> bytes:
        return json.dumps(
            {
                "created": self.created.isoformat(),
                "actor": self.actor_name,
                "action": self.action,
                "object_type": self.object_type,
                "object_id": self.object_id,
                "object_repr": self.object_repr,
                "cluster": self.cluster_name,
                "details": self.details,
                "prev": self.prev_hash,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


"""Append-only, keyed and chained audit records.

Every record carries ``seq`` (its place in the one chain), ``prev_hash`` (the previous record's
``hash``) and ``hash`` = HMAC-SHA256 over its whole content under the key named by ``key_id``
(``audit.keys``; never stored in the database). A database writer can change rows but cannot
recompute a ``hash``, so ``manage.py verify_audit`` finds the first record that was edited,
inserted, reordered or removed. ``AuditCheckpoint`` rows are Ed25519 signatures over the chain
head, exported and kept elsewhere (``manage.py audit_checkpoint --export``).

Records written before keys existed (``key_id == ""``) carry a plain SHA-256 ``hash``; the
upgrade appended one keyed record after them, whose MAC covers their head, so they are
protected from then on (see README "Audit and teams").

Never migrate this table with an operation SQLite performs by rebuilding the table without
re-creating the triggers (``audit.triggers``); ``tests/unit/test_audit.py`` checks they exist.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db import models

from core.models import AppendOnlyError, AppendOnlyModel, AppendOnlyQuerySet

GENESIS = "0" * 64


def canonical_json(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def event_content(event) -> dict:
    """Everything the MAC covers: every stored column except the MAC itself. A function, so
    migrations can use it with their historical models."""
    return {
        "v": 2,
        "seq": event.seq,
        "created": event.created.isoformat(),
        "actor_id": event.actor_id,
        "actor": event.actor_name,
        "action": event.action,
        "outcome": event.outcome,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "cluster_id": event.cluster_id,
        "cluster": event.cluster_name,
        "team_id": event.team_id,
        "details": event.details,
        "changes": event.changes,
        "request_id": event.request_id,
        "source": event.source,
        "source_address": event.source_address,
        "user_agent": event.user_agent,
        "key_id": event.key_id,
        "prev": event.prev_hash,
    }


def legacy_hash(event) -> str:
    """The plain SHA-256 of a record written before keyed records (its content then)."""
    return hashlib.sha256(
        canonical_json(
            {
                "created": event.created.isoformat(),
                "actor": event.actor_name,
                "action": event.action,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "object_repr": event.object_repr,
                "cluster": event.cluster_name,
                "details": event.details,
                "prev": event.prev_hash,
            }
        )
    ).hexdigest()


class AuditEventQuerySet(AppendOnlyQuerySet):
    def bulk_create(self, *args, **kwargs):
        raise AppendOnlyError("audit records are appended through audit.services (record, append_many) only")

    def bulk_update(self, *args, **kwargs):
        raise AppendOnlyError("AuditEvent rows are append-only")


class AuditEvent(AppendOnlyModel):
    GENESIS = GENESIS

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Succeeded"
        FAILURE = "failure", "Failed"
        DENIED = "denied", "Refused"
        # An operation that someone stopped: neither succeeded nor failed.
        CANCELLED = "cancelled", "Cancelled"

    seq = models.BigIntegerField(unique=True)
    created = models.DateTimeField(db_index=True)
    # No database constraint and no cascade: deleting a user or cluster never touches a record.
    # No index of their own either: filters use actor_name and (cluster, id), and every index
    # costs each append (the chain serialises appends).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # Denormalised so the record still says who and what after users or clusters are deleted.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    cluster = models.ForeignKey(
        "clusters.Cluster",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="audit_events",
    )
    cluster_name = models.CharField(max_length=63, blank=True)
    # For records outside any cluster (team membership): the team they concern.
    team = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    details = models.JSONField(default=dict, blank=True)
    changes = models.JSONField(default=dict, blank=True)  # {"before": {...}, "after": {...}}, secrets masked
    request_id = models.CharField("correlation id", max_length=64, blank=True)
    source = models.CharField(max_length=120, blank=True)  # "web", "worker:<task>", "command:<name>", "system"
    source_address = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    key_id = models.CharField(max_length=32, blank=True)  # "" = written before keys (plain SHA-256)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)  # a MAC: unique by construction, the chain checks it

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Keyset pagination (id) under each filter the history page offers.
            models.Index(fields=["cluster", "-id"], name="audit_audit_cluster_a0a116_idx"),
            models.Index(fields=["action", "-id"], name="audit_action_id"),
            # The history's usual question: one cluster's records of one kind.
            models.Index(fields=["cluster", "action", "-id"], name="audit_cluster_action_id"),
            models.Index(fields=["actor_name", "-id"], name="audit_actor_id"),
            models.Index(fields=["object_type", "object_id", "-id"], name="audit_object_id"),
            models.Index(fields=["request_id"], name="audit_request"),
        ]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs) -> None:
        if not self.hash:
            raise AppendOnlyError("audit records are written with audit.services.record, which chains and keys them")
        super().save(*args, **kwargs)

    # --- the chain --------------------------------------------------------------------------

    def content(self) -> dict:
        return event_content(self)

    def canonical(self) -> bytes:
        return canonical_json(self.content())

    def legacy_hash(self) -> str:
        return legacy_hash(self)


class AuditChainHead(models.Model):
    """One row, locked while appending so concurrent writers extend the chain in turn.

    ``mac`` binds (count, last_hash) under the audit key, so removing the newest records and
    rewinding this row is detected even without a checkpoint."""

    last_hash = models.CharField(max_length=64, default="")
    count = models.BigIntegerField(default=0)
    key_id = models.CharField(max_length=32, blank=True)
    mac = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"chain head: {self.count} record(s)"

    @staticmethod
    def mac_input(count: int, last_hash: str) -> bytes:
        return canonical_json({"head": last_hash, "count": count})


class AuditCheckpoint(AppendOnlyModel):
    """An Ed25519 signature over the chain head at one moment; exported copies prove that the
    records up to ``seq`` are unchanged even to someone who has the HMAC key."""

    seq = models.BigIntegerField()
    head = models.CharField(max_length=64)
    created = models.DateTimeField()
    public_key = models.CharField(max_length=100)  # raw Ed25519 public key, base64
    signature = models.CharField(max_length=100)  # base64
    reason = models.CharField(max_length=32, default="on demand")

    class Meta:
        ordering = ["-seq", "-id"]

    def __str__(self) -> str:
        return f"checkpoint at record {self.seq} ({self.created:%Y-%m-%d %H:%M:%S})"

    def message(self) -> bytes:
        return canonical_json(
            {"kubeboard_audit_checkpoint": 1, "seq": self.seq, "head": self.head, "created": self.created.isoformat()}
        )

    def as_export(self) -> dict:
        return {
            "kubeboard_audit_checkpoint": 1,
            "seq": self.seq,
            "head": self.head,
            "created": self.created.isoformat(),
            "public_key": self.public_key,
            "signature": self.signature,
        }


class AuditStreamCursor(models.Model):
    """How far the SIEM stream (``audit.siem``) got, one row per sink: records up to
    ``last_seq`` were accepted by the collector. The shipper moves it only after a batch was
    accepted, so a crash sends a few records again rather than losing any. ``lease_*`` lets one
    shipper at a time send (several workers run one each)."""

    sink = models.CharField(max_length=300, unique=True)  # the sink's address without credentials
    last_seq = models.BigIntegerField(default=0)
    last_success = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    lease_owner = models.CharField(max_length=120, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"audit stream to {self.sink}: delivered up to record {self.last_seq}"

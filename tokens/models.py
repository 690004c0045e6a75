"""Bootstrap tokens, the per-cluster token policy and sync state, and certificate keys.

A ``BootstrapToken`` row mirrors one ``kube-system/bootstrap-token-<id>`` Secret. The secret
part is encrypted at rest and shown only on request (admin role, audited). ``next_action_at``
is the one indexed column the sweeps read: the next moment the row needs attention
(rotation, retirement after a rotation, expiry, the node-joined check, the hard lifetime), or
NULL when nothing will ever be due, so a sweep costs what is due, never a scan of all tokens.
"""

from __future__ import annotations

import datetime
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.encryption import EncryptedTextField, SecretValue
from kubeadm import tokens as kubeadm_tokens
from tokens import vocabulary


def default_usages() -> list[str]:
    return list(kubeadm_tokens.DEFAULT_USAGES)


def default_groups() -> list[str]:
    return list(kubeadm_tokens.DEFAULT_GROUPS)


class TokenState(models.TextChoices):
    """What a person sees in the list (computed, not stored); the words are tokens.vocabulary's."""

    VALID = vocabulary.VALID.key, vocabulary.VALID.label
    EXPIRING = vocabulary.EXPIRING.key, vocabulary.EXPIRING.label
    EXPIRED = vocabulary.EXPIRED.key, vocabulary.EXPIRED.label
    REVOKED = vocabulary.REVOKED.key, vocabulary.REVOKED.label
    CONSUMED = vocabulary.CONSUMED.key, vocabulary.CONSUMED.label
    RETIRED = vocabulary.RETIRED.key, vocabulary.RETIRED.label
    LIFETIME_ENDED = vocabulary.LIFETIME_ENDED.key, vocabulary.LIFETIME_ENDED.label
    EXTERNAL = vocabulary.EXTERNAL.key, vocabulary.EXTERNAL.label
    GONE = vocabulary.GONE.key, vocabulary.GONE.label


class BootstrapToken(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Being created"
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"
        GONE = "gone", "Gone from the cluster"

    class Origin(models.TextChoices):
        KUBEBOARD = "kubeboard", "Created by Kubeboard"
        EXTERNAL = "external", "Found in the cluster"

    class Purpose(models.TextChoices):
        MANUAL = "manual", "Manual"
        JOIN = "join", "Node join"
        KEEPER = "keeper", "Kept valid by policy"
        UPLOAD_CERTS = "upload-certs", "Owner of kubeadm-certs"
        EXTERNAL = "external", "External"

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="tokens")
    token_id = models.CharField(max_length=6)
    secret = EncryptedTextField()
    description = models.CharField(max_length=255, blank=True)
    usages = models.JSONField(default=default_usages)
    groups = models.JSONField(default=default_groups)
    # The TTL asked for (None when an expiry date was given instead).
    ttl = models.DurationField(null=True, blank=True, default=kubeadm_tokens.DEFAULT_TTL)
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.KUBEBOARD)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.MANUAL)
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="tokens")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    # Rotation: a successor is made before expiry; this token is then retired at retire_at.
    auto_rotate = models.BooleanField(default=False)
    successor = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="predecessor"
    )
    chain_started_at = models.DateTimeField(null=True, blank=True)
    retire_at = models.DateTimeField(null=True, blank=True)

    # The sweep's work list and the lease that keeps two workers off the same row.
    next_action_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    leased_by = models.CharField(max_length=100, blank=True)
    last_error = models.TextField(blank=True)

    # What the cluster says about the Secret.
    secret_uid = models.CharField(max_length=64, blank=True)
    cluster_created_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    # The bootstrap signer's detached JWS for this token in kube-public/cluster-info, as the last
    # sync verified it: "valid", "missing", "invalid", or "" for a token without the signing usage.
    signature = models.CharField(max_length=16, blank=True)

    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoke_reason = models.CharField(max_length=200, blank=True)
    # How a revoked (deleted) token ended, in the vocabulary's words: revoked, consumed, retired or
    # lifetime-ended, from the audit action that recorded it (tokens.vocabulary.ENDINGS).
    ended_as = models.CharField(max_length=16, blank=True)
    gone_at = models.DateTimeField(null=True, blank=True)
    node_joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["cluster", "token_id"], name="unique_token_id_per_cluster")]
        permissions = [("reveal_bootstraptoken", "Can reveal a bootstrap token's secret")]

    def __str__(self) -> str:
        # The token id is public (it is the Secret's name); the secret part never appears.
        return f"{self.token_id}.{'*' * 16}"

    def plain_secret(self) -> str:
        """The secret part (only for a reveal, a join command or restoring the Secret)."""
        value = self.secret
        return value.reveal() if isinstance(value, SecretValue) else str(value)

    @property
    def secret_name(self) -> str:
        return f"{kubeadm_tokens.SECRET_NAME_PREFIX}{self.token_id}"

    @property
    def is_live(self) -> bool:
        """Still an object Kubeboard manages in the cluster (not revoked, gone or expired)."""
        return self.status == self.Status.ACTIVE

    def is_expired(self, now: datetime.datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def state(self, now: datetime.datetime | None = None) -> str:
        """The state a person sees (tokens.vocabulary): how it ended, or where it is in its life."""
        now = now or timezone.now()
        if self.status == self.Status.REVOKED:
            return self.ended_as or TokenState.REVOKED
        if self.status == self.Status.GONE:
            return TokenState.GONE
        if self.status == self.Status.EXPIRED or self.is_expired(now):
            return TokenState.EXPIRED
        if self.origin == self.Origin.EXTERNAL:
            return TokenState.EXTERNAL
        if self.expires_at is not None and vocabulary.is_expiring(self.created_at, self.expires_at, now):
            return TokenState.EXPIRING
        return TokenState.VALID

    def state_label(self, now: datetime.datetime | None = None) -> str:
        return vocabulary.state_label(self.state(now))

    @property
    def expiring_seconds(self) -> int:
        """How long before its expiry the countdown turns to "expiring" (the vocabulary's rule)."""
        if self.expires_at is None:
            return 0
        return int(vocabulary.expiring_window(self.created_at, self.expires_at).total_seconds())

    @property
    def can_join(self) -> bool:
        """Usable for `kubeadm join` discovery and TLS bootstrap."""
        return set(kubeadm_tokens.KNOWN_USAGES) <= set(self.usages or [])


class TokenPolicy(models.Model):
    """Per-cluster rules the sweeps enforce (closing Cluster API's token gaps)."""

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="token_policy")
    keep_valid_token = models.BooleanField(
        "keep a valid join token",
        default=False,
        help_text="Always keep at least one valid join token (created and rotated by Kubeboard).",
    )
    default_ttl = models.DurationField("default TTL", default=kubeadm_tokens.DEFAULT_TTL)
    max_ttl = models.DurationField(
        "maximum TTL", default=timedelta(days=7), help_text="No token may be created with a longer TTL."
    )
    max_lifetime = models.DurationField(
        "hard maximum lifetime",
        default=timedelta(days=30),
        help_text="No token, and no rotation chain for a node that never joins, stays valid longer than this.",
    )
    rotate_before = models.DurationField(
        "rotate before expiry",
        default=timedelta(hours=2),
        help_text="A token marked for rotation gets its successor this long before it expires.",
    )
    rotation_grace = models.DurationField(
        "grace after rotation",
        default=timedelta(minutes=15),
        help_text="How long the old token stays valid once its successor exists.",
    )
    revoke_after_join = models.BooleanField(
        "delete a node's token once it is Ready",
        default=True,
        help_text="The token a node joined with is deleted once the API server reports the node Ready.",
    )
    # The cluster-level check ("keep a valid join token") is due at this time.
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "token policies"

    def __str__(self) -> str:
        return f"token policy of {self.cluster}"


class TokenSync(models.Model):
    """The last comparison of a cluster's token Secrets with Kubeboard's rows."""

    class Result(models.TextChoices):
        NEVER = "never", "Never synced"
        OK = "ok", "In sync"
        UNREACHABLE = "unreachable", "API server unreachable"
        FORBIDDEN = "forbidden", "Forbidden"
        ERROR = "error", "Error"

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="token_sync")
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.NEVER)
    message = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    # The drift the last sync that found any reported (one line per change).
    last_drift_at = models.DateTimeField(null=True, blank=True)
    drift = models.JSONField(default=list, blank=True)
    # kube-public/cluster-info as the last sync found it: does its CA match the cluster's pin?
    cluster_info = models.CharField(max_length=200, blank=True)
    next_sync_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token sync of {self.cluster}"


class CertificateKey(models.Model):
    """A key the kubeadm-certs Secret is encrypted with (upload-certs), valid for two hours."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUPERSEDED = "superseded", "Superseded"
        EXPIRED = "expired", "Expired"

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="certificate_keys")
    # Wiped when the key expires or is superseded: it is never shown again.
    key = EncryptedTextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    token = models.ForeignKey(BootstrapToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    operation = models.ForeignKey(
        "operations.Operation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    next_action_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["cluster", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"certificate key #{self.pk} of {self.cluster}"

    def is_valid(self, now: datetime.datetime | None = None) -> bool:
        return self.status == self.Status.ACTIVE and bool(self.key) and self.expires_at > (now or timezone.now())

    def state(self, now: datetime.datetime | None = None) -> str:
        """valid, expiring, expired or superseded: the same words and "expiring" rule as a token's."""
        now = now or timezone.now()
        if self.status == self.Status.SUPERSEDED:
            return vocabulary.KEY_SUPERSEDED.key
        if not self.is_valid(now):
            return vocabulary.KEY_EXPIRED.key
        if vocabulary.is_expiring(self.created_at, self.expires_at, now):
            return vocabulary.KEY_EXPIRING.key
        return vocabulary.KEY_VALID.key

    @property
    def expiring_seconds(self) -> int:
        return int(vocabulary.expiring_window(self.created_at, self.expires_at).total_seconds())

    def plain_key(self) -> str:
        value = self.key
        return value.reveal() if isinstance(value, SecretValue) else str(value)

"""Token life cycle: create, delete (revoke), rotate, retire, expire, reveal, join commands.

Never half-done: a create makes the Secret first and then, in one transaction, the row and
its audit record; if that transaction fails the Secret is deleted again. A delete removes the
Secret and then marks the row; if marking fails the Secret is put back from the row. An API
server that cannot be reached raises ``kube.ClusterUnreachable`` (retryable)
before anything changed.

Concurrency: every action on an existing token first takes the row's *lease* in a short
locking transaction (``select_for_update``; on SQLite the IMMEDIATE transaction serializes),
so a sweep in another worker and a person clicking "rotate" can never both act on one token.
The API call happens outside any database transaction.

Each action writes exactly one audit record with the actor and the token id, never the secret.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

import kube
from audit.services import record, refusals_of
from clusters import apiaccess
from core.formatting import duration_words
from core.permissions import ADMIN, require
from kubeadm import join as kubeadm_join
from kubeadm import tokens as kubeadm_tokens
from tokens import vocabulary
from tokens.models import BootstrapToken, TokenPolicy, TokenSync
from tokens.policies import (
    MIN_SUCCESSOR_LIFE,
    RETRY_AFTER,
    TokenError,
    chain_limit,
    check_request,
    covers_joins,
    human,
    next_action_for,
    policy_for,
)

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)


class DuplicateToken(TokenError):
    """A token with that id exists already (in Kubeboard or in the cluster)."""


class TokenBusy(TokenError):
    """Another request or worker is acting on this token right now."""


class TokenStateError(TokenError):
    """The token is not in a state that allows the action (the message says why)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now or timezone.now()


def _summary(token: BootstrapToken) -> dict:
    """Audit details of a token: everything but the secret."""
    return {
        "token_id": token.token_id,
        "description": token.description,
        "usages": list(token.usages or []),
        "groups": list(token.groups or []),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "purpose": token.purpose,
        "origin": token.origin,
        "node": token.node.name if token.node_id else None,
    }


def _schedule(token: BootstrapToken, policy: TokenPolicy, now: datetime.datetime) -> None:
    token.next_action_at = next_action_for(token, policy, now)


def _wake_policy(cluster, now: datetime.datetime) -> None:
    """Ask the sweep to re-check "keep a valid join token" now (a join token went away)."""
    TokenPolicy.objects.filter(cluster=cluster, keep_valid_token=True).update(next_check_at=now)


# --- leases ---------------------------------------------------------------------------------------


def acquire(token: BootstrapToken, *, now: datetime.datetime, holder: str = "") -> BootstrapToken:
    """Lock ``token`` for one action; TokenBusy when another holder has it. Returns a fresh row."""
    with transaction.atomic():
        row = BootstrapToken.objects.select_for_update(of=("self",)).select_related("cluster", "node").get(pk=token.pk)
        if row.lease_until is not None and row.lease_until > now:
            raise TokenBusy(
                f"token {row.token_id} is being changed by {row.leased_by or 'another worker'} right now; "
                "reload the page in a moment"
            )
        row.lease_until = now + LEASE
        row.leased_by = holder or worker_name()
        BootstrapToken.objects.filter(pk=row.pk).update(lease_until=row.lease_until, leased_by=row.leased_by)
    return row


def release(token: BootstrapToken, *, now: datetime.datetime, error: str = "", retry: bool = False) -> None:
    """Give the lease back without a change (after a failure: note the error, retry later)."""
    fields = {"lease_until": None, "leased_by": ""}
    if error:
        fields["last_error"] = error[:2000]
    if retry:
        fields["next_action_at"] = now + RETRY_AFTER
    BootstrapToken.objects.filter(pk=token.pk).update(**fields)


# --- create ---------------------------------------------------------------------------------------


def create_token(
    cluster,
    *,
    user=None,
    token: str | None = None,
    ttl: timedelta | None = None,
    expires_at: datetime.datetime | None = None,
    description: str = "",
    usages=kubeadm_tokens.DEFAULT_USAGES,
    groups=kubeadm_tokens.DEFAULT_GROUPS,
    node=None,
    purpose: str = BootstrapToken.Purpose.MANUAL,
    auto_rotate: bool = False,
    now: datetime.datetime | None = None,
) -> tuple[BootstrapToken, str]:
    """Create a token in the cluster and in Kubeboard; returns (row, "id.secret").

    The full token is returned once, for the person or engine that asked; it is stored
    encrypted and only shown again through ``reveal_token``.
    """
    now = _now(now)
    policy = policy_for(cluster)
    request = check_request(
        policy,
        now=now,
        token=token,
        ttl=ttl,
        expires_at=expires_at,
        description=description,
        usages=usages,
        groups=groups,
    )
    row = _create(cluster, request, user=user, node=node, purpose=purpose, auto_rotate=auto_rotate, now=now)
    return row, str(request.token)


def _create(
    cluster,
    request,
    *,
    user,
    node,
    purpose: str,
    auto_rotate: bool,
    now: datetime.datetime,
    chain_started_at: datetime.datetime | None = None,
    predecessor: BootstrapToken | None = None,
    audit_action: str = "token.created",
    audit_details: dict | None = None,
) -> BootstrapToken:
    """Three steps, so that nothing is ever half-created:

    1. a *pending* row claims the id (the unique constraint refuses a duplicate, and a
       concurrent sync leaves the Secret of a pending row alone);
    2. the Secret is created in the cluster — if that fails, the pending row is deleted;
    3. one transaction makes the row active and writes the audit record — if that fails, the
       Secret is deleted again and the pending row removed.

    A worker that dies between the steps leaves a pending row whose lease runs out; the sweep
    then deletes its Secret (if any) and the row.
    """
    token_id = request.token.id
    policy = policy_for(cluster)
    try:
        with transaction.atomic():
            row = BootstrapToken.objects.create(
                cluster=cluster,
                token_id=token_id,
                secret=request.token.secret,
                description=request.description,
                usages=list(request.usages),
                groups=list(request.groups),
                ttl=request.ttl,
                expires_at=request.expires_at,
                status=BootstrapToken.Status.PENDING,
                origin=BootstrapToken.Origin.KUBEBOARD,
                purpose=purpose,
                node=node,
                auto_rotate=auto_rotate,
                chain_started_at=chain_started_at or now,
                created_by=user if getattr(user, "pk", None) else None,
                created_at=now,
                lease_until=now + LEASE,
                leased_by=worker_name(),
                next_action_at=now + LEASE,
            )
    except IntegrityError:
        existing = BootstrapToken.objects.filter(cluster=cluster, token_id=token_id).first()
        state = existing.get_status_display().lower() if existing else "being created"
        raise DuplicateToken(
            f"token id {token_id} already exists in cluster {cluster.name} ({state}); "
            "choose another id or leave it empty for a random one",
            field="token",
        ) from None
    body = kubeadm_tokens.bootstrap_token_secret(
        request.token,
        description=request.description,
        expiration=request.expires_at,
        usages=request.usages,
        groups=request.groups,
    )
    try:
        meta = kube.create_secret(cluster, body, user=user)
    except BaseException as exc:
        BootstrapToken.objects.filter(pk=row.pk, status=BootstrapToken.Status.PENDING).delete()
        if isinstance(exc, kube.ClusterAPIError) and exc.status == 409:
            raise DuplicateToken(
                f"token id {token_id} already exists in cluster {cluster.name} (Secret {request.token.secret_name} "
                "is there; sync to import it); choose another id",
                field="token",
            ) from None
        raise
    try:
        with transaction.atomic():
            TokenSync.objects.get_or_create(cluster=cluster, defaults={"next_sync_at": now})
            row.status = BootstrapToken.Status.ACTIVE
            row.secret_uid = meta.uid
            row.cluster_created_at = meta.created
            row.last_seen_at = now
            row.lease_until = None
            row.leased_by = ""
            _schedule(row, policy, now)
            row.save()
            details = _summary(row)
            if predecessor is not None:
                predecessor.successor = row
                predecessor.retire_at = min(now + policy.rotation_grace, predecessor.expires_at or now)
                predecessor.lease_until = None
                predecessor.leased_by = ""
                predecessor.last_error = ""
                _schedule(predecessor, policy, now)
                predecessor.save(
                    update_fields=["successor", "retire_at", "next_action_at", "lease_until", "leased_by", "last_error"]
                )
                details = {"token_id": predecessor.token_id, "successor_id": row.token_id} | {
                    key: value for key, value in details.items() if key != "token_id"
                }
                details["retire_at"] = predecessor.retire_at.isoformat()
            record(
                audit_action,
                actor=user,
                obj=predecessor or row,
                cluster=cluster,
                details=details | (audit_details or {}),
            )
    except BaseException:
        # The row could not be written: take the Secret back out so nothing is half-created.
        try:
            kube.delete_secret(cluster, request.token.secret_name, user=user)
        except Exception as cleanup:
            log.error(
                "token %s: the database write failed and deleting Secret %s failed too (%s); "
                "the sweep retries when the pending row's lease runs out",
                token_id,
                request.token.secret_name,
                cleanup,
            )
        else:
            BootstrapToken.objects.filter(pk=row.pk, status=BootstrapToken.Status.PENDING).delete()
        raise
    return row


def abandon_pending(token: BootstrapToken, *, now: datetime.datetime | None = None, leased: bool = False) -> None:
    """Finish a create whose worker died: delete its Secret if it was made, then the row."""
    now = _now(now)
    row = token if leased else acquire(token, now=now, holder="sweep")
    if row.status != BootstrapToken.Status.PENDING:
        release(row, now=now)
        return
    try:
        existed = kube.delete_secret(row.cluster, row.secret_name)
    except Exception as exc:
        release(row, now=now, error=str(exc), retry=True)
        raise
    with transaction.atomic():
        BootstrapToken.objects.filter(pk=row.pk).delete()
        if existed:
            record(
                "token.create_abandoned",
                cluster=row.cluster,
                details={"token_id": row.token_id, "reason": "the creating worker stopped before recording it"},
            )


# --- delete / revoke ------------------------------------------------------------------------------


def delete_token(
    token: BootstrapToken,
    *,
    user=None,
    reason: str,
    now: datetime.datetime | None = None,
    audit_action: str = "token.revoked",
    leased: bool = False,
) -> None:
    """Delete the token's Secret and mark the row revoked (one audit record).

    ``audit_action`` says why it ended (token.revoked, token.consumed, token.retired,
    token.lifetime_ended) and decides the state the row shows from now on (tokens.vocabulary).
    ``leased``: the caller (the sweep) already holds the token's lease.
    """
    ended_as = vocabulary.ending_for(audit_action)
    now = _now(now)
    row = token if leased else acquire(token, now=now)
    if row.status not in (BootstrapToken.Status.ACTIVE, BootstrapToken.Status.EXPIRED):
        release(row, now=now)
        raise TokenStateError(f"token {row.token_id} is {row.state_label(now)}; nothing to revoke")
    try:
        existed = kube.delete_secret(row.cluster, row.secret_name, user=user)
    except Exception as exc:
        release(row, now=now, error=str(exc), retry=leased)
        raise
    try:
        with transaction.atomic():
            row.status = BootstrapToken.Status.REVOKED
            row.revoked_at = now
            row.revoked_by = user if getattr(user, "pk", None) else None
            row.revoke_reason = reason[:200]
            row.ended_as = ended_as
            if ended_as == vocabulary.CONSUMED.key:
                # Used by its node: recorded with the deletion, so the row never shows "revoked" between.
                row.node_joined_at = now
            row.retire_at = None
            row.next_action_at = None
            row.lease_until = None
            row.leased_by = ""
            row.last_error = ""
            row.save()
            record(
                audit_action,
                actor=user,
                obj=row,
                cluster=row.cluster,
                details={"token_id": row.token_id, "reason": reason, "secret_existed": existed},
            )
            if row.can_join:
                _wake_policy(row.cluster, now)
    except BaseException:
        if existed:
            _restore_secret(row, user=user)
        release(row, now=now)
        raise


def _restore_secret(row: BootstrapToken, *, user) -> None:
    """Put a deleted Secret back exactly as it was (the row could not record the delete)."""
    body = kubeadm_tokens.bootstrap_token_secret(
        f"{row.token_id}.{row.plain_secret()}",
        description=row.description,
        expiration=row.expires_at,
        ttl=None,
        usages=tuple(row.usages or ()),
        groups=tuple(row.groups or ()),
    )
    try:
        kube.create_secret(row.cluster, body, user=user)
    except Exception as exc:  # pragma: no cover - reported, never hidden
        log.error(
            "token %s: could not restore Secret %s after a failed database write: %s",
            row.token_id,
            row.secret_name,
            exc,
        )


# --- rotate / retire / expire ---------------------------------------------------------------------


def rotate_token(
    token: BootstrapToken,
    *,
    user=None,
    now: datetime.datetime | None = None,
    reason: str = "requested",
    leased: bool = False,
) -> tuple[BootstrapToken, str]:
    """Make the successor first; the old token is retired after the policy's grace period.

    Returns (successor, "id.secret"). Refused when the token already has a successor, is no
    longer valid, or its rotation chain reached the hard maximum lifetime.
    """
    now = _now(now)
    row = token if leased else acquire(token, now=now)
    try:
        policy = policy_for(row.cluster)
        if row.status != BootstrapToken.Status.ACTIVE or row.is_expired(now):
            raise TokenStateError(f"token {row.token_id} is {row.state_label(now)}; only a valid token can be rotated")
        if row.successor_id is not None:
            raise TokenStateError(
                f"token {row.token_id} was already rotated; its successor is {row.successor.token_id}"
            )
        if row.retire_at is not None:
            raise TokenStateError(f"token {row.token_id} is being retired")
        ttl = row.ttl or (row.expires_at - row.created_at if row.expires_at else policy.default_ttl)
        ttl = min(max(ttl, timedelta(seconds=1)), policy.max_ttl)
        limit = chain_limit(row, policy)
        expires_at = now + ttl
        if limit is not None:
            if limit <= now + MIN_SUCCESSOR_LIFE:
                raise TokenStateError(
                    f"token {row.token_id}: its rotation chain reached the hard maximum lifetime "
                    f"({duration_words(policy.max_lifetime)}); create a new token instead"
                )
            expires_at = min(expires_at, limit)
        request = check_request(
            policy,
            now=now,
            expires_at=expires_at,
            description=row.description,
            usages=row.usages,
            groups=row.groups,
            lifetime_limit=limit or now + policy.max_lifetime,
        )
        request = type(request)(
            request.token, request.expires_at, row.ttl, request.description, request.usages, request.groups
        )
        successor = _create(
            row.cluster,
            request,
            user=user,
            node=row.node,
            # A successor is Kubeboard's own token, even when it replaces an external one.
            purpose=BootstrapToken.Purpose.MANUAL if row.purpose == BootstrapToken.Purpose.EXTERNAL else row.purpose,
            auto_rotate=row.auto_rotate,
            now=now,
            chain_started_at=row.chain_started_at or row.created_at,
            predecessor=row,
            audit_action="token.rotated",
            audit_details={"reason": reason},
        )
    except BaseException as exc:
        release(row, now=now, error=str(exc) if leased else "", retry=leased)
        raise
    return successor, str(request.token)


def expire_tokens(
    tokens: list[BootstrapToken], *, now: datetime.datetime | None = None, wake_policy: bool = True
) -> list[BootstrapToken]:
    """Mark tokens whose expiration passed, in one transaction (the cluster's token cleaner
    deletes their Secrets). One audit record per token; returns the ones marked."""
    now = _now(now)
    marked = []
    with transaction.atomic():
        for token in tokens:
            updated = BootstrapToken.objects.filter(
                pk=token.pk, status=BootstrapToken.Status.ACTIVE, expires_at__lte=now
            ).update(
                status=BootstrapToken.Status.EXPIRED,
                next_action_at=None,
                lease_until=None,
                leased_by="",
                retire_at=None,
            )
            if updated:
                record(
                    "token.expired",
                    obj=token,
                    cluster=token.cluster,
                    details={"token_id": token.token_id, "expires_at": token.expires_at.isoformat()},
                )
                marked.append(token)
        if wake_policy:
            for cluster_id in {token.cluster_id for token in marked if token.can_join}:
                TokenPolicy.objects.filter(cluster_id=cluster_id, keep_valid_token=True).update(next_check_at=now)
    return marked


def mark_gone(
    token: BootstrapToken, *, user=None, now: datetime.datetime, reason: str = "", wake_policy: bool = True
) -> bool:
    """The token's Secret vanished from the cluster before it expired (audited once).
    ``wake_policy``: ask the keep-a-valid-token policy to make a new join token at once."""
    with transaction.atomic():
        updated = BootstrapToken.objects.filter(pk=token.pk, status=BootstrapToken.Status.ACTIVE).update(
            status=BootstrapToken.Status.GONE, gone_at=now, next_action_at=None, retire_at=None
        )
        if updated:
            details = {
                "token_id": token.token_id,
                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            }
            if reason:
                details["reason"] = reason
            record("token.gone", actor=user, obj=token, cluster=token.cluster, details=details)
            if wake_policy:
                _wake_policy(token.cluster, now)
    return bool(updated)


def forget_cluster_tokens(
    cluster, *, user=None, reason: str, now: datetime.datetime | None = None
) -> list[BootstrapToken]:
    """The cluster's etcd is gone (its last control plane was reset), and every bootstrap-token
    Secret with it: mark the tokens still counted as active gone. No API call and no new join
    token: there is no API server left to ask."""
    now = _now(now)
    tokens = BootstrapToken.objects.filter(cluster=cluster, status=BootstrapToken.Status.ACTIVE).select_related(
        "cluster"
    )
    return [token for token in tokens if mark_gone(token, user=user, now=now, reason=reason, wake_policy=False)]


# --- reveal and join commands ---------------------------------------------------------------------


@refusals_of("token.revealed", TokenStateError)
def reveal_token(token: BootstrapToken, *, user) -> str:
    """The full "id.secret" for an admin; audited. Only while the token is valid."""
    if user is not None:
        require(user, ADMIN, token.cluster)
    if token.status != BootstrapToken.Status.ACTIVE or token.is_expired():
        raise TokenStateError(f"token {token.token_id} is {token.state_label()}; its secret is no longer shown")
    record("token.revealed", actor=user, obj=token, cluster=token.cluster, details={"token_id": token.token_id})
    return f"{token.token_id}.{token.plain_secret()}"


def join_endpoint(cluster) -> str:
    """What kubeadm prints after "kubeadm join": the API server as host:port."""
    if cluster.is_adopted:
        return apiaccess.credentials(cluster).server
    return apiaccess.server_url(cluster)


def join_command_for(cluster, full_token: str, *, control_plane: bool = False, certificate_key: str = "") -> str:
    """The join line kubeadm prints, always with --discovery-token-ca-cert-hash."""
    if not cluster.ca_pin_hash:
        raise TokenStateError(f"cluster {cluster.name} has no CA pin yet; prepare its identity or adopt it first")
    return kubeadm_join.join_command(
        join_endpoint(cluster),
        full_token,
        [cluster.ca_pin_hash],
        control_plane=control_plane,
        certificate_key=certificate_key,
    )


@refusals_of("token.join_command_revealed", TokenStateError)
def reveal_join_command(token: BootstrapToken, *, user, control_plane: bool = False, certificate_key: str = "") -> str:
    """The join command for an existing token: shows its secret, so it is a reveal (admin, audited)."""
    if user is not None:
        require(user, ADMIN, token.cluster)
    if token.status != BootstrapToken.Status.ACTIVE or token.is_expired():
        raise TokenStateError(f"token {token.token_id} is {token.state_label()}; it can no longer join nodes")
    if not token.can_join:
        raise TokenStateError(f"token {token.token_id} lacks the signing and authentication usages a join needs")
    command = join_command_for(
        token.cluster,
        f"{token.token_id}.{token.plain_secret()}",
        control_plane=control_plane,
        certificate_key=certificate_key,
    )
    record(
        "token.join_command_revealed",
        actor=user,
        obj=token,
        cluster=token.cluster,
        details={"token_id": token.token_id, "control_plane": control_plane},
    )
    return command


def live_join_tokens(cluster, *, now: datetime.datetime | None = None) -> list[BootstrapToken]:
    """Tokens that count as valid join tokens for the keep-valid policy."""
    now = _now(now)
    policy = policy_for(cluster)
    rows = BootstrapToken.objects.filter(cluster=cluster, status=BootstrapToken.Status.ACTIVE, expires_at__gt=now)
    return [row for row in rows if covers_joins(row, policy, now)]


# --- policy ---------------------------------------------------------------------------------------


POLICY_FIELDS = (
    "keep_valid_token",
    "default_ttl",
    "max_ttl",
    "max_lifetime",
    "rotate_before",
    "rotation_grace",
    "revoke_after_join",
)


def update_policy(policy: TokenPolicy, *, user, now: datetime.datetime | None = None) -> list[str]:
    """Save a changed policy, reschedule the cluster's live tokens, audit what changed."""
    now = _now(now)
    before = TokenPolicy.objects.filter(pk=policy.pk).values(*POLICY_FIELDS).first() or {}
    changed = [name for name in POLICY_FIELDS if before.get(name) != getattr(policy, name)]
    if not changed:
        return []
    with transaction.atomic():
        policy.updated_by = user if getattr(user, "pk", None) else None
        policy.next_check_at = now if policy.keep_valid_token else None
        policy.save()
        policy.cluster._token_policy_cache = policy
        for row in BootstrapToken.objects.filter(cluster=policy.cluster, status=BootstrapToken.Status.ACTIVE):
            BootstrapToken.objects.filter(pk=row.pk).update(next_action_at=next_action_for(row, policy, now))

        def show(value):
            return human(value) if isinstance(value, timedelta) else value

        record(
            "token_policy.changed",
            actor=user,
            obj=policy.cluster,
            cluster=policy.cluster,
            details={name: {"from": show(before.get(name)), "to": show(getattr(policy, name))} for name in changed},
        )
    return changed

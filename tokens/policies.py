"""A cluster's token policy: what may be created, and when each token next needs the sweep.

``next_action_for`` is the one place that decides a token's ``next_action_at``; ``due_action``
the one place that decides what the sweep does when it comes. Both take ``now`` so tests can
move the clock.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from datetime import timedelta

from core.formatting import duration_words
from kubeadm import tokens as kubeadm_tokens
from kubeadm.errors import TokenFormatError
from tokens.models import BootstrapToken, TokenPolicy

# How often a node-bound token asks the API server whether its node is Ready yet.
NODE_CHECK_INTERVAL = timedelta(seconds=30)
# How often a cluster that must keep a valid join token is re-checked even when nothing changed.
POLICY_RECHECK = timedelta(minutes=10)
# A sweep that cannot reach the API server tries the token again after this long.
RETRY_AFTER = timedelta(minutes=1)
# A rotation chain closer than this to its hard end gets no successor.
MIN_SUCCESSOR_LIFE = timedelta(minutes=1)


class TokenError(ValueError):
    """Bad input or a refused token action; ``field`` names the form field it belongs to."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


def policy_for(cluster) -> TokenPolicy:
    policy = getattr(cluster, "_token_policy_cache", None)
    if policy is None:
        policy, _ = TokenPolicy.objects.get_or_create(cluster=cluster)
    return policy


def human(delta: timedelta) -> str:
    """24h, 2h30m, 7d — like the TTLs people type (a form's value, an audit detail); to show a
    length of time in a sentence, use core.formatting.duration_words ("7 days")."""
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


@dataclass(frozen=True)
class TokenRequest:
    """A validated request to create a token."""

    token: kubeadm_tokens.BootstrapTokenString
    expires_at: datetime.datetime
    ttl: timedelta | None
    description: str
    usages: tuple[str, ...]
    groups: tuple[str, ...]


def check_request(
    policy: TokenPolicy,
    *,
    now: datetime.datetime,
    token: str | None = None,
    ttl: timedelta | None = None,
    expires_at: datetime.datetime | None = None,
    description: str = "",
    usages=kubeadm_tokens.DEFAULT_USAGES,
    groups=kubeadm_tokens.DEFAULT_GROUPS,
    lifetime_limit: datetime.datetime | None = None,
) -> TokenRequest:
    """Validate everything a create needs, with one specific message per problem.

    ``lifetime_limit`` is when the token's rotation chain must end (hard maximum lifetime).
    """
    if token:
        try:
            parsed = kubeadm_tokens.parse_token(token.strip())
        except TokenFormatError as exc:
            raise TokenError(str(exc), field="token") from None
    else:
        parsed = kubeadm_tokens.generate_token()
    usages = tuple(usages)
    groups = tuple(groups)
    try:
        kubeadm_tokens.validate_usages(usages)
    except TokenFormatError as exc:
        raise TokenError(f"{exc}; leave out the unknown usages", field="usages") from None
    try:
        kubeadm_tokens.validate_groups(groups, usages)
    except TokenFormatError as exc:
        raise TokenError(str(exc), field="groups") from None
    if len(description) > 255:
        raise TokenError(f"description: at most 255 characters, found {len(description)}", field="description")
    if ttl is not None and expires_at is not None:
        raise TokenError("give either a TTL or an expiry date, not both", field="ttl")
    if expires_at is None:
        ttl = policy.default_ttl if ttl is None else ttl
        if ttl <= timedelta(0):
            raise TokenError(
                "lifetime: a TTL of zero (a token that never expires) is not allowed; give a duration such as 24h",
                field="ttl",
            )
        if ttl < timedelta(seconds=1):
            raise TokenError("lifetime: expected at least 1 second", field="ttl")
        if ttl > policy.max_ttl:
            raise TokenError(
                f"lifetime: {duration_words(ttl)} is longer than this cluster's maximum TTL of "
                f"{duration_words(policy.max_ttl)}",
                field="ttl",
            )
        expires_at = now + ttl
    else:
        if expires_at.tzinfo is None:
            raise TokenError("expiry date: expected a time with a time zone", field="expires_at")
        if expires_at <= now:
            raise TokenError("expiry date: it is in the past; choose a later one", field="expires_at")
        if expires_at - now > policy.max_ttl:
            raise TokenError(
                f"expiry date: {expires_at:%Y-%m-%d %H:%M} UTC is further away than this cluster's maximum TTL of "
                f"{duration_words(policy.max_ttl)}",
                field="expires_at",
            )
    # The Secret's expiration has seconds precision (RFC 3339, "Z"): keep exactly that.
    expires_at = expires_at.astimezone(datetime.UTC).replace(microsecond=0)
    limit = lifetime_limit or now + policy.max_lifetime
    if expires_at > limit:
        raise TokenError(
            f"expiry: {expires_at:%Y-%m-%d %H:%M} UTC is beyond the hard maximum lifetime "
            f"({duration_words(policy.max_lifetime)}, until {limit:%Y-%m-%d %H:%M} UTC)",
            field="ttl",
        )
    return TokenRequest(parsed, expires_at, ttl, description, usages, groups)


def chain_limit(token: BootstrapToken, policy: TokenPolicy) -> datetime.datetime | None:
    """When a rotation chain must end (None: never — the policy's own kept token)."""
    if token.purpose == BootstrapToken.Purpose.KEEPER:
        return None
    start = token.chain_started_at or token.created_at
    return start + policy.max_lifetime


def lifetime_end(token: BootstrapToken, policy: TokenPolicy) -> datetime.datetime:
    """A single token's hard end: created (in the cluster, if known) + the maximum lifetime."""
    return (token.cluster_created_at or token.created_at) + policy.max_lifetime


def rotation_due_at(token: BootstrapToken, policy: TokenPolicy) -> datetime.datetime | None:
    """When ``token`` gets its successor; None when it will not (not rotating, or its chain
    would end before the successor could live a minute)."""
    if not token.auto_rotate or token.successor_id is not None or token.expires_at is None:
        return None
    due = token.expires_at - policy.rotate_before
    limit = chain_limit(token, policy)
    # (expirations have seconds precision, the limit may not)
    if limit is not None and (token.expires_at >= limit - timedelta(seconds=1) or limit <= due + MIN_SUCCESSOR_LIFE):
        return None  # the chain ends with this token
    return due


def waiting_for_node(token: BootstrapToken, policy: TokenPolicy) -> bool:
    return token.node_id is not None and policy.revoke_after_join and token.node_joined_at is None


def next_action_for(token: BootstrapToken, policy: TokenPolicy, now: datetime.datetime) -> datetime.datetime | None:
    """The next time the sweep must look at ``token``; None when nothing will ever be due."""
    if token.status == BootstrapToken.Status.PENDING:
        return token.lease_until or now
    if token.status != BootstrapToken.Status.ACTIVE:
        return None
    candidates = [lifetime_end(token, policy)]
    if token.expires_at is not None:
        candidates.append(token.expires_at)
    if token.retire_at is not None:
        candidates.append(token.retire_at)
    rotation = rotation_due_at(token, policy)
    if rotation is not None:
        candidates.append(rotation)
    if waiting_for_node(token, policy):
        candidates.append(now + NODE_CHECK_INTERVAL)
    return min(candidates)


class Action:
    ABANDON = "abandon"
    RETIRE = "retire"
    EXPIRE = "expire"
    LIFETIME = "lifetime"
    NODE_CHECK = "node-check"
    ROTATE = "rotate"
    NONE = "none"


def due_action(token: BootstrapToken, policy: TokenPolicy, now: datetime.datetime) -> str:
    """What the sweep does with ``token`` now (most pressing first)."""
    if token.status == BootstrapToken.Status.PENDING:
        return Action.ABANDON
    if token.status != BootstrapToken.Status.ACTIVE:
        return Action.NONE
    if token.retire_at is not None and token.retire_at <= now:
        return Action.RETIRE
    if token.expires_at is not None and token.expires_at <= now:
        return Action.EXPIRE
    if lifetime_end(token, policy) <= now:
        return Action.LIFETIME
    if waiting_for_node(token, policy):
        return Action.NODE_CHECK
    rotation = rotation_due_at(token, policy)
    if rotation is not None and rotation <= now:
        return Action.ROTATE
    return Action.NONE


def covers_joins(token: BootstrapToken, policy: TokenPolicy, now: datetime.datetime) -> bool:
    """Does ``token`` count as "a valid join token" for the keep-valid policy?"""
    if token.status != BootstrapToken.Status.ACTIVE or not token.can_join or token.node_id is not None:
        return False
    if token.retire_at is not None or token.expires_at is None or token.expires_at <= now:
        return False
    # A token about to expire counts only if it will get a successor.
    return token.auto_rotate or token.expires_at - now > policy.rotate_before

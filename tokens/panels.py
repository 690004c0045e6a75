"""The cluster page's tokens panel, and the context the tokens page shares with it."""

from __future__ import annotations

from django.db.models import Count, F, OuterRef, Subquery, Sum
from django.utils import timezone

from clusters import apiaccess
from core.permissions import ADMIN, OPERATE, can
from tokens import certkeys, timeline, vocabulary
from tokens.models import BootstrapToken, CertificateKey, TokenPolicy, TokenSync
from tokens.policies import policy_for
from tokens.sync import sync_state


def _row(token: BootstrapToken, state: str) -> dict:
    """What a token's row shows: its state in the vocabulary's words, and whether it still works."""
    return {
        "token": token,
        "state": state,
        "label": vocabulary.state_label(state),
        "live": state in vocabulary.LIVE_STATES,
        "consumed": state == vocabulary.CONSUMED.key,
    }


def token_context(cluster, user, *, now=None) -> dict:
    """What the tokens page and the cluster page's panel show."""
    now = now or timezone.now()
    policy = policy_for(cluster)
    tokens = list(
        BootstrapToken.objects.filter(cluster=cluster)
        .exclude(status=BootstrapToken.Status.PENDING)
        .select_related("node", "created_by", "successor")
    )
    keys = list(CertificateKey.objects.filter(cluster=cluster).select_related("token", "created_by")[:10])
    rows = [_row(token, token.state(now)) for token in tokens]
    current_key = next((key for key in keys if key.is_valid(now)), None)
    key_rows = [
        {"key": key, "state": (state := key.state(now)), "label": vocabulary.state_label(state)} for key in keys
    ]
    return {
        "cluster": cluster,
        "token_rows": rows,
        # "usable": valid, expiring or external, the states a join can still use.
        "live_count": sum(1 for row in rows if row["live"]),
        "certificate_key_rows": key_rows,
        "current_certificate_key": current_key,
        "policy": policy,
        "token_sync": sync_state(cluster),
        "timeline": timeline.build(policy, tokens, keys, now=now),
        "can_operate": can(user, OPERATE, cluster),
        "can_admin": can(user, ADMIN, cluster),
        "can_upload_certs": certkeys.can_upload_certs(cluster),
        "can_connect": cluster.is_adopted or apiaccess.holds_ca_key(cluster),
        "now": now,
    }


def cluster_panel(cluster, user) -> dict:
    """States, countdowns, the timeline and the sync state (the cluster page sets its own
    permission flags; the panel shows no actions)."""
    context = token_context(cluster, user)
    keys = (
        "token_rows",
        "live_count",
        "policy",
        "token_sync",
        "timeline",
        "current_certificate_key",
    )
    return {key: context[key] for key in keys} | {"tokens": [row["token"] for row in context["token_rows"]]}


_SYNC_FIELDS = ("result", "message", "last_success_at", "last_drift_at", "drift", "cluster_info")
# What the panel shows of each token, besides its state (which moves with the clock).
_SHOWN_FIELDS = (
    "token_id",
    "status",
    "origin",
    "purpose",
    "expires_at",
    "description",
    "usages",
    "groups",
    "signature",
    "auto_rotate",
    "retire_at",
    "last_error",
    "revoke_reason",
    "ended_as",
    "created_at",
    "successor_id",
    "node_id",
    "created_by_id",
)


def cluster_panel_fields() -> dict:
    """The sync state, the policy and the valid certificate keys, read with the cluster's row."""
    now = timezone.now()
    sync = {f"live_sync_{name}": F(f"token_sync__{name}") for name in _SYNC_FIELDS}
    policy = {f"live_policy_{name}": F(f"token_policy__{name}") for name in ("rotate_before", "max_ttl")}
    # A key stops being valid for good (expired, superseded or wiped) and a new one has a higher
    # id: the set of valid keys changes exactly when their count or the sum of their ids does.
    valid = (
        CertificateKey.objects.filter(cluster=OuterRef("pk"), status=CertificateKey.Status.ACTIVE, expires_at__gt=now)
        .exclude(key="")
        .order_by()
        .values("cluster")
    )
    keys = {
        "live_valid_keys": Subquery(valid.annotate(count=Count("pk")).values("count")),
        "live_valid_keys_ids": Subquery(valid.annotate(ids=Sum("pk")).values("ids")),
    }
    return sync | policy | keys


def cluster_panel_version(cluster) -> tuple:
    """What the panel shows, in one query of the tokens without decrypting a secret (the rest
    comes with the cluster's row, cluster_panel_fields)."""
    now = timezone.now()
    # The page creates the sync and policy rows when it first shows the panel: until then, the
    # same as their defaults.
    if cluster.live_sync_result is None:
        sync = [getattr(TokenSync(), name) for name in _SYNC_FIELDS]
    else:
        sync = [getattr(cluster, f"live_sync_{name}") for name in _SYNC_FIELDS]
    rotate_before, max_ttl = cluster.live_policy_rotate_before, cluster.live_policy_max_ttl
    if rotate_before is None:
        rotate_before, max_ttl = TokenPolicy().rotate_before, TokenPolicy().max_ttl
    tokens = BootstrapToken.objects.filter(cluster=cluster).exclude(status=BootstrapToken.Status.PENDING)
    return (
        sync,
        rotate_before,
        max_ttl,
        [
            (token.pk, *(getattr(token, field) for field in _SHOWN_FIELDS), token.state(now))
            for token in tokens.only(*_SHOWN_FIELDS)
        ],
        cluster.live_valid_keys,
        cluster.live_valid_keys_ids,
    )

"""The cluster page's tokens panel, and the context the tokens page shares with it."""

from __future__ import annotations

from django.utils import timezone

from clusters import apiaccess
from core.permissions import ADMIN, OPERATE, can
from tokens import certkeys, timeline
from tokens.models import BootstrapToken, CertificateKey, TokenPolicy, TokenSync
from tokens.policies import policy_for
from tokens.sync import sync_state


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
    rows = [{"token": token, "state": token.state(now, policy.rotate_before)} for token in tokens]
    current_key = next((key for key in keys if key.is_valid(now)), None)
    return {
        "cluster": cluster,
        "token_rows": rows,
        "live_count": sum(1 for row in rows if row["state"] in ("valid", "expiring", "external")),
        "certificate_keys": keys,
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
        "certificate_keys",
        "current_certificate_key",
    )
    return {key: context[key] for key in keys} | {"tokens": [row["token"] for row in context["token_rows"]]}


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
    "successor_id",
    "node_id",
    "created_by_id",
)


def cluster_panel_version(cluster) -> tuple:
    """What the panel shows, read in three queries without decrypting a secret (the cluster
    page polls it): the tokens, the certificate keys, and the sync state with the policy."""
    now = timezone.now()
    settings = (
        type(cluster)
        .objects.filter(pk=cluster.pk)
        .values_list(
            "token_sync__result",
            "token_sync__message",
            "token_sync__last_success_at",
            "token_sync__last_drift_at",
            "token_sync__drift",
            "token_sync__cluster_info",
            "token_policy__rotate_before",
            "token_policy__max_ttl",
        )
        .first()
    )
    # The page creates both rows when it first shows the panel: until then, the same as their defaults.
    sync, policy = TokenSync(), TokenPolicy()
    defaults = (sync.result, sync.message, sync.last_success_at, sync.last_drift_at, sync.drift, sync.cluster_info)
    settings = (settings[:6] if settings[0] is not None else defaults) + (
        settings[6:] if settings[6] is not None else (policy.rotate_before, policy.max_ttl)
    )
    rotate_before = settings[6]
    tokens = BootstrapToken.objects.filter(cluster=cluster).exclude(status=BootstrapToken.Status.PENDING)
    keys = CertificateKey.objects.filter(cluster=cluster)[:10]
    return (
        settings,
        [
            (token.pk, *(getattr(token, field) for field in _SHOWN_FIELDS), token.state(now, rotate_before))
            for token in tokens.only(*_SHOWN_FIELDS)
        ],
        [(key.pk, key.status, key.created_at, key.expires_at, key.is_valid(now)) for key in keys],
    )

"""The periodic sweeps: token policies, due tokens, certificate keys.

Cost follows what is due: each sweep reads only rows whose indexed ``next_action_at`` /
``next_check_at`` has passed, never every token. Safe with several workers: a sweep *claims*
its rows in one short transaction (``select_for_update(skip_locked=True)`` on PostgreSQL, so
two workers take disjoint rows without waiting; SQLite's IMMEDIATE transactions serialize the
claim) by setting a lease and pushing ``next_action_at`` to the lease's end, then acts outside
the transaction. A worker that dies mid-action leaves a lease that simply runs out; the row is
then due again.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import kube
from audit.models import AuditEvent
from audit.services import record
from tokens.models import BootstrapToken, CertificateKey, TokenPolicy
from tokens.policies import (
    POLICY_RECHECK,
    RETRY_AFTER,
    Action,
    TokenError,
    due_action,
    next_action_for,
    rotation_due_at,
)
from tokens.services import (
    LEASE,
    abandon_pending,
    create_token,
    delete_token,
    expire_tokens,
    live_join_tokens,
    release,
    rotate_token,
    worker_name,
)

log = logging.getLogger(__name__)

BATCH = 500
MAX_BATCHES = 20  # at most 10,000 tokens per pass; the next pass (a minute later) takes the rest
KEEPER_DESCRIPTION = "Kept valid by Kubeboard's token policy"


@dataclass
class SweepReport:
    actions: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        done = ", ".join(f"{name}: {count}" for name, count in sorted(self.actions.items())) or "nothing due"
        return done + (f"; {len(self.errors)} error(s)" if self.errors else "")


def sweep(*, now: datetime.datetime | None = None, batch: int = BATCH) -> SweepReport:
    """One pass of every sweep (the django-q2 schedule calls this every minute)."""
    now = now or timezone.now()
    report = SweepReport()
    sweep_policies(now=now, report=report, batch=batch)
    sweep_tokens(now=now, report=report, batch=batch)
    sweep_certificate_keys(now=now, report=report, batch=batch)
    return report


def _lease_free(now: datetime.datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lte=now)


def claim_tokens(now: datetime.datetime, *, batch: int = BATCH, holder: str = "") -> list[int]:
    """Take up to ``batch`` due tokens for this worker (see the module docstring)."""
    holder = holder or worker_name()
    with transaction.atomic():
        ids = list(
            BootstrapToken.objects.select_for_update(skip_locked=True)
            .filter(next_action_at__lte=now)
            .filter(_lease_free(now))
            .order_by("next_action_at")
            .values_list("pk", flat=True)[:batch]
        )
        if ids:
            BootstrapToken.objects.filter(pk__in=ids).update(
                lease_until=now + LEASE, leased_by=holder, next_action_at=now + LEASE
            )
    return ids


def _reschedule(token: BootstrapToken, policy: TokenPolicy, now: datetime.datetime) -> None:
    BootstrapToken.objects.filter(pk=token.pk).update(
        next_action_at=next_action_for(token, policy, now), lease_until=None, leased_by="", last_error=""
    )


def _policies(cluster_ids: set[int]) -> dict[int, TokenPolicy]:
    """The policies of these clusters in one query (made with defaults where missing)."""
    found = {policy.cluster_id: policy for policy in TokenPolicy.objects.filter(cluster_id__in=cluster_ids)}
    for cluster_id in cluster_ids - set(found):
        found[cluster_id], _ = TokenPolicy.objects.get_or_create(cluster_id=cluster_id)
    return found


def sweep_tokens(
    *, now: datetime.datetime, report: SweepReport, batch: int = BATCH, max_batches: int = MAX_BATCHES
) -> None:
    """Claim and handle due tokens, batch after batch, until none is due (or the bound)."""
    for _ in range(max_batches):
        ids = claim_tokens(now, batch=batch)
        if not ids:
            return
        tokens = list(BootstrapToken.objects.filter(pk__in=ids).select_related("cluster", "node", "successor"))
        policies = _policies({token.cluster_id for token in tokens})
        expiring = []
        for token in tokens:
            policy = policies[token.cluster_id]
            token.cluster._token_policy_cache = policy
            action = due_action(token, policy, now)
            if action == Action.EXPIRE:
                expiring.append(token)  # no cluster call: marked together below
                continue
            try:
                _act(token, policy, action, now, report)
            except (kube.KubeAPIError, TokenError) as exc:
                # The services already released the lease and set a retry time; say why here.
                report.errors.append(f"{token.cluster.name}/{token.token_id} {action}: {exc}")
                if not token.last_error:
                    _record_failure(token, action, exc)
                release(token, now=now, error=str(exc), retry=True)
        if expiring:
            report.actions[Action.EXPIRE] += len(expire_tokens(expiring, now=now))
        if len(ids) < batch:
            return


# The record each automatic action writes when it succeeds; its failure is recorded under the same name.
ACTION_RECORDS = {
    Action.ABANDON: "token.create_abandoned",
    Action.RETIRE: "token.retired",
    Action.LIFETIME: "token.lifetime_ended",
    Action.NODE_CHECK: "token.consumed",
    Action.ROTATE: "token.rotated",
}


def _record_failure(token: BootstrapToken, action: str, error: Exception) -> None:
    """One "failure" record for the first failed try of an automatic action; the retries every
    RETRY_AFTER that fail the same way are noted on the token (``last_error``), not recorded."""
    record(
        ACTION_RECORDS.get(action, f"token.{action}"),
        obj=token,
        cluster=token.cluster,
        outcome=AuditEvent.Outcome.FAILURE,
        details={"token_id": token.token_id, "action": action, "error": str(error)[:300]},
    )


def _act(token: BootstrapToken, policy: TokenPolicy, action: str, now: datetime.datetime, report) -> None:
    if action == Action.ABANDON:
        abandon_pending(token, now=now, leased=True)
    elif action == Action.RETIRE:
        successor = token.successor.token_id if token.successor_id else "none"
        delete_token(
            token, reason=f"rotated; successor {successor}", now=now, audit_action="token.retired", leased=True
        )
    elif action == Action.EXPIRE:
        expire_tokens([token], now=now)
    elif action == Action.LIFETIME:
        delete_token(
            token, reason="reached the hard maximum lifetime", now=now, audit_action="token.lifetime_ended", leased=True
        )
    elif action == Action.NODE_CHECK:
        ready = kube.node_ready(token.cluster, token.node.name)
        if ready:
            delete_token(
                token,
                reason=f"node {token.node.name} joined and is Ready",
                now=now,
                audit_action="token.consumed",
                leased=True,
            )
        else:
            rotation = rotation_due_at(token, policy)
            if rotation is not None and rotation <= now:
                rotate_token(token, now=now, reason="policy: rotate before expiry (node not joined yet)", leased=True)
                action = Action.ROTATE
            else:
                _reschedule(token, policy, now)
                action = "node-not-ready"
    elif action == Action.ROTATE:
        rotate_token(token, now=now, reason=f"policy: rotate {policy.rotate_before} before expiry", leased=True)
    else:
        _reschedule(token, policy, now)
    report.actions[action] += 1


def claim_policies(now: datetime.datetime, *, batch: int = BATCH) -> list[int]:
    with transaction.atomic():
        ids = list(
            TokenPolicy.objects.select_for_update(skip_locked=True)
            .filter(next_check_at__lte=now)
            .filter(_lease_free(now))
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:batch]
        )
        if ids:
            TokenPolicy.objects.filter(pk__in=ids).update(lease_until=now + LEASE, next_check_at=now + LEASE)
    return ids


def ensure_join_token(policy: TokenPolicy, *, now: datetime.datetime) -> BootstrapToken | None:
    """Keep at least one valid join token: create one when none covers the cluster."""
    cluster = policy.cluster
    cluster._token_policy_cache = policy
    if not policy.keep_valid_token or live_join_tokens(cluster, now=now):
        return None
    token, _ = create_token(
        cluster,
        ttl=min(policy.default_ttl, policy.max_ttl),
        description=KEEPER_DESCRIPTION,
        purpose=BootstrapToken.Purpose.KEEPER,
        auto_rotate=True,
        now=now,
    )
    return token


def sweep_policies(*, now: datetime.datetime, report: SweepReport, batch: int = BATCH) -> None:
    for policy in TokenPolicy.objects.filter(pk__in=claim_policies(now, batch=batch)).select_related("cluster"):
        try:
            created = ensure_join_token(policy, now=now)
        except (kube.KubeAPIError, TokenError) as exc:
            report.errors.append(f"{policy.cluster.name} keep-valid: {exc}")
            if not policy.last_error:  # the first failed try: one record, not one per retry
                record(
                    "token.created",
                    obj=policy.cluster,
                    outcome=AuditEvent.Outcome.FAILURE,
                    details={"purpose": BootstrapToken.Purpose.KEEPER, "error": str(exc)[:300]},
                )
            TokenPolicy.objects.filter(pk=policy.pk).update(
                lease_until=None, last_error=str(exc)[:2000], next_check_at=now + RETRY_AFTER
            )
            continue
        TokenPolicy.objects.filter(pk=policy.pk).update(
            lease_until=None, last_error="", next_check_at=now + POLICY_RECHECK if policy.keep_valid_token else None
        )
        report.actions["keep-valid-created" if created else "keep-valid-ok"] += 1


def sweep_certificate_keys(*, now: datetime.datetime, report: SweepReport, batch: int = BATCH) -> None:
    """Wipe certificate keys at their expiry: never shown (or usable from Kubeboard) again."""
    due = list(
        CertificateKey.objects.filter(next_action_at__lte=now)
        .select_related("cluster")
        .order_by("next_action_at")[:batch]
    )
    for key in due:
        with transaction.atomic():
            updated = CertificateKey.objects.filter(pk=key.pk, status=CertificateKey.Status.ACTIVE).update(
                status=CertificateKey.Status.EXPIRED, key="", next_action_at=None
            )
            CertificateKey.objects.filter(pk=key.pk).update(next_action_at=None)
            if updated:
                record(
                    "certificate_key.expired",
                    obj=key,
                    cluster=key.cluster,
                    details={"certificate_key_id": key.pk, "expires_at": key.expires_at.isoformat()},
                )
                report.actions["certificate-key-expired"] += 1

"""Keep Kubeboard's token rows and the cluster's bootstrap-token Secrets in agreement.

A sync lists the Secrets once and compares them with the rows:

* a Secret without a row (e.g. ``kubeadm token create`` on a node) is imported as **external**;
* a live row whose Secret disappeared before its expiry is marked **gone**; after its expiry it
  is simply **expired** (the cluster's token cleaner removed it);
* a Secret whose fields changed (description, usages, groups, expiration, secret) updates the
  row;
* a Secret still present for a token Kubeboard revoked is deleted again.

Each change is one audit record and one line of drift on the cluster's ``TokenSync``; a
scheduled sync that finds nothing new writes no audit record, so drift is reported once per
change, not once per sync. A sync someone asks for (``sync_now``: the Tokens page's Sync,
``manage.py token sync``) also writes one ``token.synced`` record of its own with its counts
and outcome. Two syncs of one cluster never overlap (a lease on the ``TokenSync`` row).

A cluster that cannot have an API server to ask yet (never initialized, no credentials held:
``clusters.preconditions``, ``sync_tokens``) is not asked: the sync is skipped before any
connection. The schedule skips it quietly (no log line, no record, the state it showed stays) and
looks again at the normal interval; a sync someone asked for is refused with the reason.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

import kube
from audit.models import AuditEvent
from audit.services import record
from clusters import preconditions
from kubeadm import discovery, kubeconfig
from kubeadm import tokens as kubeadm_tokens
from kubeadm.errors import JWSError, KubeadmError, PinError, TokenFormatError
from tokens.models import BootstrapToken, TokenSync
from tokens.policies import next_action_for, policy_for
from tokens.services import _wake_policy, mark_gone

log = logging.getLogger(__name__)

SYNC_INTERVAL = timedelta(minutes=5)
SYNC_RETRY = timedelta(minutes=1)
SYNC_LEASE = timedelta(minutes=2)
# A sync's result when the cluster cannot be asked yet (its reason is the report's message).
SKIPPED = "skipped"


@dataclass
class SyncReport:
    result: str
    message: str = ""
    imported: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    revoked_again: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    cluster_info: str = ""
    found: int = 0  # bootstrap-token Secrets in the cluster
    invalid: int = 0  # of those, Secrets that are not valid bootstrap tokens (left alone)

    @property
    def ok(self) -> bool:
        return self.result == TokenSync.Result.OK

    def counts(self) -> dict:
        """What the sync found and did, in numbers (the audit record's details)."""
        return {
            "result": self.result,
            "found": self.found,
            "invalid": self.invalid,
            "imported": len(self.imported),
            "changed": len(self.changed),
            "marked_gone": len(self.gone),
            "expired": len(self.expired),
            "revoked_again": len(self.revoked_again),
        }


class SyncBusy(Exception):
    """Another worker is syncing this cluster right now."""


def sync_state(cluster) -> TokenSync:
    state, _ = TokenSync.objects.get_or_create(cluster=cluster)
    return state


def _claim(cluster, now: datetime.datetime) -> TokenSync:
    sync_state(cluster)
    with transaction.atomic():
        state = TokenSync.objects.select_for_update().get(cluster=cluster)
        if state.lease_until is not None and state.lease_until > now:
            raise SyncBusy(f"cluster {cluster.name} is being synced right now")
        state.lease_until = now + SYNC_LEASE
        state.save(update_fields=["lease_until"])
    return state


def import_external(
    cluster,
    info: kubeadm_tokens.BootstrapTokenInfo,
    meta: kube.SecretMeta,
    *,
    user=None,
    now: datetime.datetime,
    existing: BootstrapToken | None = None,
) -> BootstrapToken:
    """Record a token someone made in the cluster without Kubeboard (audited once)."""
    with transaction.atomic():
        row = existing or BootstrapToken(cluster=cluster, token_id=info.token.id)
        reappeared = existing is not None
        row.secret = info.token.secret
        row.description = info.description
        row.usages = list(info.usages)
        row.groups = list(info.groups)
        row.ttl = None
        row.expires_at = info.expiration
        row.status = BootstrapToken.Status.EXPIRED if info.expired(now) else BootstrapToken.Status.ACTIVE
        row.origin = BootstrapToken.Origin.EXTERNAL
        row.purpose = BootstrapToken.Purpose.EXTERNAL
        row.auto_rotate = False
        row.successor = None
        row.retire_at = None
        row.created_by = None
        row.created_at = meta.created or now
        row.chain_started_at = row.created_at
        row.secret_uid = meta.uid
        row.cluster_created_at = meta.created
        row.last_seen_at = now
        row.revoked_at = row.gone_at = None
        row.revoked_by = None
        row.revoke_reason = ""
        row.ended_as = ""
        row.lease_until = None
        row.leased_by = ""
        row.next_action_at = next_action_for(row, policy_for(cluster), now)
        row.save()
        record(
            "token.imported",
            actor=user,
            obj=row,
            cluster=cluster,
            details={
                "token_id": row.token_id,
                "description": row.description,
                "usages": row.usages,
                "groups": row.groups,
                "expires_at": row.expires_at.isoformat() if row.expires_at else None,
                "reappeared": reappeared,
            },
        )
    return row


def _mark_expired(token: BootstrapToken, *, user, now: datetime.datetime) -> bool:
    with transaction.atomic():
        updated = BootstrapToken.objects.filter(pk=token.pk, status=BootstrapToken.Status.ACTIVE).update(
            status=BootstrapToken.Status.EXPIRED, next_action_at=None, retire_at=None
        )
        if updated:
            record(
                "token.expired",
                actor=user,
                obj=token,
                cluster=token.cluster,
                details={
                    "token_id": token.token_id,
                    "expires_at": token.expires_at.isoformat() if token.expires_at else None,
                    "noticed_by": "sync",
                },
            )
            _wake_policy(token.cluster, now)
    return bool(updated)


def _differences(row: BootstrapToken, info: kubeadm_tokens.BootstrapTokenInfo) -> list[str]:
    changed = []
    if row.description != info.description:
        changed.append("description")
    if sorted(row.usages or []) != sorted(info.usages):
        changed.append("usages")
    if list(row.groups or []) != list(info.groups):
        changed.append("groups")
    if row.expires_at != info.expiration:
        changed.append("expiration")
    if row.plain_secret() != info.token.secret:
        changed.append("token-secret")
    return changed


def _apply_change(row: BootstrapToken, info, meta, changed: list[str], *, user, now) -> None:
    with transaction.atomic():
        row.description = info.description
        row.usages = list(info.usages)
        row.groups = list(info.groups)
        row.expires_at = info.expiration
        row.secret = info.token.secret
        row.secret_uid = meta.uid
        row.cluster_created_at = meta.created
        row.last_seen_at = now
        row.next_action_at = next_action_for(row, policy_for(row.cluster), now)
        row.save()
        record(
            "token.drift",
            actor=user,
            obj=row,
            cluster=row.cluster,
            details={"token_id": row.token_id, "changed": changed},
        )


def _verify_cluster_info(cluster, report: SyncReport, *, user, now: datetime.datetime) -> None:
    """Check cluster-info as a joining node does (kubeadm.discovery): the CA against the
    cluster's pin, and each signing token's JWS over the exact kubeconfig text."""
    data = kube.cluster_info(cluster, user=user)
    live = BootstrapToken.objects.filter(cluster=cluster, status=BootstrapToken.Status.ACTIVE)
    if data is None or discovery.CLUSTER_INFO_KUBECONFIG_KEY not in data:
        report.cluster_info = "missing: no kube-public/cluster-info ConfigMap (join discovery cannot work)"
        live.update(signature="")
        return
    try:
        certs = kubeconfig.ca_certificates(kubeconfig.parse_kubeconfig(data[discovery.CLUSTER_INFO_KUBECONFIG_KEY]))
        pins = [discovery.ca_pin_hash(cert) for cert in certs]
    except KubeadmError as exc:
        report.cluster_info = f"unreadable: {exc}"
        pins = []
    else:
        try:
            if cluster.ca_pin_hash:
                discovery.verify_pins(certs, [cluster.ca_pin_hash])
            report.cluster_info = f"CA matches the pin {', '.join(pins)}"
        except PinError as exc:
            report.cluster_info = f"CA pin mismatch: {exc}"
    for row in live:
        state = ""
        if "signing" in (row.usages or []) and not row.is_expired(now) and pins:
            try:
                # The pins of cluster-info itself: here only the token's signature is in question.
                discovery.verify_cluster_info(data, f"{row.token_id}.{row.plain_secret()}", pins)
                state = "valid"
            except JWSError:
                present = f"{kubeadm_tokens.JWS_KEY_PREFIX}{row.token_id}" in data
                state = "invalid" if present else "missing"
        if state != row.signature:
            BootstrapToken.objects.filter(pk=row.pk).update(signature=state)


def sync_cluster(cluster, *, user=None, now: datetime.datetime | None = None) -> SyncReport:
    """Compare the cluster's token Secrets with the rows and reconcile (see the module docstring)."""
    now = now or timezone.now()
    ready = preconditions.check(cluster, "sync_tokens")
    if not ready:
        # Asking would only fail ("No route to host") at every run, and retrying cannot help until
        # someone initializes the cluster: look again at the normal interval, not the retry's.
        TokenSync.objects.filter(cluster=cluster).update(next_sync_at=now + SYNC_INTERVAL)
        return SyncReport(result=SKIPPED, message=str(ready))
    try:
        state = _claim(cluster, now)
    except SyncBusy as exc:
        return SyncReport(result="busy", message=str(exc))
    report = SyncReport(result=TokenSync.Result.OK)
    try:
        _sync(cluster, report, user=user, now=now)
    except kube.ClusterUnreachable as exc:
        report.result, report.message = TokenSync.Result.UNREACHABLE, str(exc)
    except kube.ClusterForbidden as exc:
        report.result, report.message = TokenSync.Result.FORBIDDEN, str(exc)
    except kube.KubeAPIError as exc:
        report.result, report.message = TokenSync.Result.ERROR, str(exc)
    finally:
        state.refresh_from_db()
        state.result = report.result
        state.message = report.message
        state.last_attempt_at = now
        if report.cluster_info:
            state.cluster_info = report.cluster_info[:200]
        state.lease_until = None
        if report.ok:
            state.last_success_at = now
            state.next_sync_at = now + SYNC_INTERVAL
            if report.drift:
                state.drift = report.drift[:100]
                state.last_drift_at = now
        else:
            state.next_sync_at = now + SYNC_RETRY
        state.save()
    return report


def sync_now(cluster, *, user=None) -> SyncReport:
    """A sync someone asked for: ``sync_cluster`` plus one ``token.synced`` record with its
    counts, whatever came of it (another sync running: refused; cluster unreachable, or one that
    cannot be asked yet: failed, as a token create refused for that reason is)."""
    report = sync_cluster(cluster, user=user)
    if report.ok:
        outcome = AuditEvent.Outcome.SUCCESS
    elif report.result == "busy":
        outcome = AuditEvent.Outcome.DENIED
    else:
        outcome = AuditEvent.Outcome.FAILURE
    details = report.counts()
    if report.message:
        details["error"] = report.message[:300]
    record("token.synced", actor=user, obj=cluster, cluster=cluster, details=details, outcome=outcome)
    return report


def _sync(cluster, report: SyncReport, *, user, now: datetime.datetime) -> None:
    secrets = kube.list_token_secrets(cluster, user=user)
    report.found = len(secrets)
    found: dict[str, tuple[kubeadm_tokens.BootstrapTokenInfo, kube.SecretMeta]] = {}
    for meta, body in secrets:
        try:
            info = kubeadm_tokens.token_from_secret(body)
        except TokenFormatError as exc:
            report.invalid += 1
            report.drift.append(f"Secret {meta.name} is not a valid bootstrap token ({exc}); left alone")
            continue
        found[info.token.id] = (info, meta)
    # Rows that a create, rotation or delete is working on right now are left to that action.
    rows = {row.token_id: row for row in BootstrapToken.objects.filter(cluster=cluster).exclude(Q(lease_until__gt=now))}
    busy = set(BootstrapToken.objects.filter(cluster=cluster, lease_until__gt=now).values_list("token_id", flat=True))
    seen: list[int] = []
    for token_id, (info, meta) in sorted(found.items()):
        if token_id in busy:
            continue
        row = rows.get(token_id)
        if row is None:
            try:
                import_external(cluster, info, meta, user=user, now=now)
            except IntegrityError:  # created by Kubeboard a moment ago, after we listed the rows
                continue
            report.imported.append(token_id)
            report.drift.append(f"imported external token {token_id} ({info.description or 'no description'})")
            continue
        if row.status == BootstrapToken.Status.ACTIVE:
            changed = _differences(row, info)
            if changed:
                _apply_change(row, info, meta, changed, user=user, now=now)
                report.changed.append(token_id)
                report.drift.append(f"token {token_id} changed in the cluster: {', '.join(changed)}")
            else:
                seen.append(row.pk)
        elif row.status == BootstrapToken.Status.EXPIRED:
            if meta.uid and row.secret_uid and meta.uid != row.secret_uid:
                import_external(cluster, info, meta, user=user, now=now, existing=row)
                report.imported.append(token_id)
                report.drift.append(f"token id {token_id} was created again in the cluster; imported as external")
        elif row.status == BootstrapToken.Status.REVOKED and meta.uid == row.secret_uid:
            # Kubeboard revoked it but the Secret is there: enforce the revocation.
            if kube.delete_secret(cluster, meta.name, user=user):
                record("token.revoke_enforced", actor=user, obj=row, cluster=cluster, details={"token_id": token_id})
                report.revoked_again.append(token_id)
                report.drift.append(f"revoked token {token_id} was still in the cluster; deleted it again")
        elif row.status in (BootstrapToken.Status.REVOKED, BootstrapToken.Status.GONE):
            # A different Secret now carries the id.
            import_external(cluster, info, meta, user=user, now=now, existing=row)
            report.imported.append(token_id)
            report.drift.append(f"token id {token_id} was created again in the cluster; imported as external")
    if seen:
        BootstrapToken.objects.filter(pk__in=seen).update(last_seen_at=now)
    _verify_cluster_info(cluster, report, user=user, now=now)
    for token_id, row in sorted(rows.items()):
        if token_id in found or row.status != BootstrapToken.Status.ACTIVE:
            continue
        # Made after the list was taken? Ask for this one Secret before calling it gone.
        if kube.secret_exists(cluster, row.secret_name, user=user):
            continue
        if row.is_expired(now):
            if _mark_expired(row, user=user, now=now):
                report.expired.append(token_id)
        elif mark_gone(row, user=user, now=now):
            report.gone.append(token_id)
            report.drift.append(f"token {token_id} was deleted in the cluster before it expired; marked gone")

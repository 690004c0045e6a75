"""The one way to write an audit record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent
from core.encryption import SecretValue

# Keys whose values are secrets by name: refusing them here keeps them out of every caller.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {"secret", "token", "token_secret", "password", "private_key", "key", "key_pem", "certificate_key", "ssh_key"}
)


class AuditSecretError(ValueError):
    """Audit details must never carry a secret."""


def _check_details(details: Any, path: str = "details") -> None:
    if isinstance(details, SecretValue):
        raise AuditSecretError(f"{path} holds a secret value")
    if isinstance(details, Mapping):
        for key, value in details.items():
            if str(key).lower() in FORBIDDEN_DETAIL_KEYS:
                raise AuditSecretError(f"{path}.{key} is a secret field name and cannot be audited")
            _check_details(value, f"{path}.{key}")
    elif isinstance(details, (list, tuple)):
        for index, value in enumerate(details):
            _check_details(value, f"{path}[{index}]")


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "username", None) or str(actor)


def record(
    action: str,
    *,
    actor=None,
    obj: models.Model | None = None,
    cluster=None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one record to the chain. Runs inside the caller's transaction if there is one."""
    details = dict(details or {})
    _check_details(details)
    if cluster is None and obj is not None:
        cluster = getattr(obj, "cluster", None) if not _is_cluster(obj) else obj
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            created=timezone.now(),
            actor=actor if getattr(actor, "pk", None) else None,
            actor_name=actor_label(actor),
            action=action,
            object_type=obj._meta.model_name if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            object_repr=str(obj)[:200] if obj is not None else "",
            cluster=cluster,
            cluster_name=cluster.name if cluster is not None else "",
            details=details,
            prev_hash=head.last_hash or AuditEvent.GENESIS,
        )
        event.hash = event.compute_hash()
        event.save()
        AuditChainHead.objects.filter(pk=1).update(last_hash=event.hash, count=models.F("count") + 1)
    return event


def _is_cluster(obj: models.Model) -> bool:
    return obj._meta.label == "clusters.Cluster"


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    reason: str


def verify_chain(events: Iterable[AuditEvent] | None = None) -> list[ChainBreak]:
    """Walk the chain oldest first; report every record whose hash or link does not hold."""
    if events is None:
        events = AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    breaks: list[ChainBreak] = []
    previous = AuditEvent.GENESIS
    count = 0
    for event in events:
        count += 1
        if event.prev_hash != previous:
            breaks.append(ChainBreak(event.id, "link to the previous record does not match (a record was removed or reordered)"))
        if event.compute_hash() != event.hash:
            breaks.append(ChainBreak(event.id, "content does not match its hash (the record was edited)"))
        previous = event.hash
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.last_hash or AuditEvent.GENESIS) != previous:
        breaks.append(ChainBreak(0, "the newest record is not the chain head (records were removed from the end)"))
    if head is not None and head.count != count:
        breaks.append(ChainBreak(0, f"the chain head counts {head.count} records but {count} exist"))
    return breaks

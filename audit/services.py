"""The one way to write an audit record.

``record(action, actor=, obj=, cluster=, details=)`` appends one record to the keyed chain
inside the caller's transaction (rolled back with it). What the call does not name comes from
the current ``audit.context``: the actor and correlation id of the web request or background
task, its source, address and user agent. ``before``/``after`` are ``audit.snapshot.snapshot``
pictures of the object; the record keeps what changed.

The append takes the chain head's lock until the surrounding transaction commits, and every
writer waits for it: call ``record`` as the last step of a transaction, never before a slow
call (SSH, the Kubernetes API) inside the same transaction.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from audit import chain
from audit.chain import ChainBreak, Report, verify
from audit.checkpoints import witness
from audit.context import current
from audit.models import AuditEvent
from audit.snapshot import diff
from core.encryption import SecretValue

__all__ = [
    "AuditSecretError",
    "ChainBreak",
    "Report",
    "actor_label",
    "record",
    "refusals",
    "refusals_of",
    "verify",
    "verify_chain",
]

# Keys whose values are secrets by name: refusing them here keeps them out of every caller.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {"secret", "token", "token_secret", "password", "private_key", "key", "key_pem", "certificate_key", "ssh_key"}
)
OUTCOMES = {choice.value for choice in AuditEvent.Outcome}


class AuditSecretError(ValueError):
    """Audit details must never carry a secret."""


def _check_details(details: Any, path: str = "details", *, names: bool = True) -> None:
    if isinstance(details, SecretValue):
        raise AuditSecretError(f"{path} holds a secret value")
    if isinstance(details, Mapping):
        for key, value in details.items():
            if names and str(key).lower() in FORBIDDEN_DETAIL_KEYS:
                raise AuditSecretError(f"{path}.{key} is a secret field name and cannot be audited")
            _check_details(value, f"{path}.{key}", names=names)
    elif isinstance(details, (list, tuple)):
        for index, value in enumerate(details):
            _check_details(value, f"{path}[{index}]", names=names)


def _json(value: Any) -> Any:
    """What the database will hand back: the MAC is computed over exactly that."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "username", None) or str(actor)


def _is_cluster(obj: models.Model) -> bool:
    return obj._meta.label == "clusters.Cluster"


def _team_of(obj: models.Model | None, cluster) -> Any:
    if cluster is not None:
        return getattr(cluster, "team_id", None)
    if obj is None:
        return None
    if obj._meta.label == "auth.Group":
        return obj.pk
    return getattr(obj, "team_id", None)


def record(
    action: str,
    *,
    actor=None,
    obj: models.Model | None = None,
    cluster=None,
    details: Mapping[str, Any] | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    source: str | None = None,
) -> AuditEvent:
    """Append one record to the chain. Runs inside the caller's transaction if there is one."""
    details = dict(details or {})
    _check_details(details)
    changes = diff(dict(before) if before is not None else None, dict(after) if after is not None else None)
    _check_details(changes, "changes", names=False)
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(sorted(OUTCOMES))}, not {outcome!r}")
    if cluster is None and obj is not None:
        cluster = obj if _is_cluster(obj) else getattr(obj, "cluster", None)
    context = current()
    if actor is None and context is not None:
        actor = context.resolved_actor()
    name = actor_label(actor) if actor is not None or context is None or context.request is None else "anonymous"
    event = AuditEvent(
        created=timezone.now(),
        actor_id=actor.pk if getattr(actor, "pk", None) else None,
        actor_name=name[:150],
        action=action,
        outcome=outcome,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        cluster_id=cluster.pk if cluster is not None else None,
        cluster_name=cluster.name if cluster is not None else "",
        team_id=_team_of(obj, cluster),
        details=_json(details),
        changes=_json(changes),
        request_id=correlation_id or (context.correlation_id if context else ""),
        source=(source or (context.source if context else "system"))[:120],
        source_address=context.source_address if context else "",
        user_agent=(context.user_agent if context else "")[:300],
    )
    appended = chain.append(event)
    # Once committed, the record is also signed into the checkpoint directory outside the
    # database: cutting it off later no longer goes unnoticed.
    seq, head = appended.seq, appended.hash
    transaction.on_commit(lambda: witness(seq, head))
    return appended


@contextmanager
def refusals(
    action: str,
    *refused: type[BaseException],
    failed: tuple[type[BaseException], ...] = (),
    actor=None,
    obj: models.Model | None = None,
    cluster=None,
    details: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Record an attempt that ended in an error as one ``action`` record with the error's
    message, then let the error go on to the caller: outcome "denied" for one of ``refused``
    (the state forbids it: nothing was tried), "failure" for one of ``failed`` (it was tried and
    did not work, e.g. the cluster did not answer). A successful attempt writes its own record.

    Wrap the whole attempt, outside its own transaction: that transaction rolls back with the
    error, and the record must outlive it."""
    try:
        yield
    except (*refused, *failed) as exc:
        outcome = AuditEvent.Outcome.DENIED if isinstance(exc, refused) else AuditEvent.Outcome.FAILURE
        record(
            action,
            actor=actor,
            obj=obj,
            cluster=cluster,
            details={**(details or {}), "error": str(exc)[:300]},
            outcome=outcome,
        )
        raise


def refusals_of(
    action: str,
    *refused: type[BaseException],
    failed: tuple[type[BaseException], ...] = (),
    details: Mapping[str, Any] | None = None,
) -> Callable:
    """``refusals`` for a whole service function ``fn(obj, ..., user=...)``: its object is the
    first argument, its actor the ``user`` keyword. The function must own its transaction."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def audited(obj, *args, **kwargs):
            with refusals(action, *refused, failed=failed, actor=kwargs.get("user"), obj=obj, details=details):
                return fn(obj, *args, **kwargs)

        return audited

    return decorate


def verify_chain(events=None) -> list[ChainBreak]:
    """Every break in the chain (empty: intact). See ``audit.chain.verify`` for the full report."""
    return verify(events=events).breaks

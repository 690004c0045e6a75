"""Who is acting, from where, and under which correlation id — for every record written meanwhile.

A web request, a background task or a management command opens one context; every
``audit.services.record`` call inside it takes the actor, correlation id (``request_id``),
source, address and user agent from it unless the call names them. Records of one request or
one operation share the correlation id, so one click can be followed to the worker that ran it.

    with audit_context(actor=user, correlation_id=correlation_id_of(operation), source="worker:host:123"):
        ...   # records written here belong to the operation's story
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

_UNSET: Any = object()


@dataclass(frozen=True)
class AuditContext:
    correlation_id: str
    source: str = "system"
    actor: Any = None  # a user, or None for the system
    source_address: str = ""
    user_agent: str = ""
    request: Any = None  # a web request: its user is the actor unless one is given

    def resolved_actor(self):
        if self.actor is not None:
            return self.actor
        user = getattr(self.request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return user
        return None


_current: ContextVar[AuditContext | None] = ContextVar("kubeboard_audit_context", default=None)


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def current() -> AuditContext | None:
    return _current.get()


@contextmanager
def audit_context(
    *,
    actor: Any = _UNSET,
    correlation_id: str | None = None,
    source: str | None = None,
    source_address: str | None = None,
    user_agent: str | None = None,
    request: Any = _UNSET,
) -> Iterator[AuditContext]:
    """Open a context; what is not given is inherited from the enclosing one (or defaults)."""
    outer = _current.get() or AuditContext(correlation_id=new_correlation_id())
    changes: dict[str, Any] = {}
    if actor is not _UNSET:
        changes["actor"] = actor
    if request is not _UNSET:
        changes["request"] = request
    if correlation_id:
        changes["correlation_id"] = str(correlation_id)
    elif _current.get() is None:
        changes["correlation_id"] = outer.correlation_id
    for name, value in (("source", source), ("source_address", source_address), ("user_agent", user_agent)):
        if value is not None:
            changes[name] = value
    context = replace(outer, **changes)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def correlation_id_of(obj) -> str | None:
    """The correlation id of the first record about ``obj`` (the request that created it), so
    work done later for it — an operation run by a worker — joins the same story."""
    from audit.models import AuditEvent

    return (
        AuditEvent.objects.filter(object_type=obj._meta.model_name, object_id=str(obj.pk))
        .exclude(request_id="")
        .order_by("seq")
        .values_list("request_id", flat=True)
        .first()
    )


# --- django-q2: a task continues the story of the request that queued it --------------------
# pre_enqueue puts the current correlation id and actor into the task (the task dict travels
# whole to the worker); pre_execute opens a context from it, or a fresh one for a scheduled
# task, with source "worker:<task name>"; post_execute_in_worker closes it.

TASK_KEY = "kubeboard_audit"
_task_tokens: list = []


def task_enqueued(sender, task=None, **kwargs) -> None:
    context = _current.get()
    if task is not None and context is not None:
        actor = context.resolved_actor()
        task[TASK_KEY] = {"correlation_id": context.correlation_id, "actor_id": getattr(actor, "pk", None)}


def task_started(sender, func=None, task=None, **kwargs) -> None:
    task = task or {}
    name = task.get("name") or getattr(func, "__name__", "task")
    carried = task.get(TASK_KEY) or {}
    actor = None
    if carried.get("actor_id"):
        from django.contrib.auth import get_user_model

        actor = get_user_model().objects.filter(pk=carried["actor_id"]).first()
    context = AuditContext(
        correlation_id=carried.get("correlation_id") or new_correlation_id(), source=f"worker:{name}", actor=actor
    )
    _task_tokens.append(_current.set(context))


def task_finished(sender, **kwargs) -> None:
    if _task_tokens:
        _current.reset(_task_tokens.pop())

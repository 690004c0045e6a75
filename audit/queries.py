"""Which records a user may read, the history filters, keyset pages and per-object histories.

Visibility (decided here, used by the pages, the exports and ``audit_export --as``):
* records of a cluster: whoever may view the cluster now (``core.permissions``), so a user
  removed from a team loses its history at once;
* records outside any cluster (logins, team membership): superusers; a team's admins for
  records about their team; and every user for the records they wrote themselves;
* records of a deleted cluster: superusers only.

Pages are keyset pages over ``id`` (``before``/``after``), never OFFSET: each page costs the
same at any depth, using the ``(filter column, id)`` indexes of ``AuditEvent``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet

from audit.models import AuditEvent
from core.permissions import ADMIN, VIEW, restrict, teams_for

PAGE_SIZE = 50
EXPORT_BATCH = 2000


class Records:
    """The records a user may read, as a few querysets ("parts") that each use an index well.

    One OR of "visible clusters, or no cluster and my team or mine" makes PostgreSQL read every
    row of the matching clusters and sort them; two parts, each paged by id and merged, read only
    what a page needs. Filters (``filter``/``exclude``/``extra``) apply to every part.
    """

    def __init__(self, parts: list[QuerySet]) -> None:
        self.parts = parts

    def filter(self, *args, **kwargs) -> Records:
        return Records([part.filter(*args, **kwargs) for part in self.parts])

    def exclude(self, *args, **kwargs) -> Records:
        return Records([part.exclude(*args, **kwargs) for part in self.parts])

    def extra(self, **kwargs) -> Records:
        return Records([part.extra(**kwargs) for part in self.parts])

    def combined(self) -> QuerySet:
        """One queryset (an OR) for small, already narrow questions (a node's story)."""
        result = self.parts[0]
        for part in self.parts[1:]:
            result = result | part
        return result

    def exists(self) -> bool:
        return any(part.exists() for part in self.parts)


def cluster_model() -> type[models.Model]:
    """The cluster model, through the reference every record has to it (``AuditEvent.cluster``
    names it lazily): audit sits below the clusters app and never imports it."""
    return AuditEvent._meta.get_field("cluster").related_model


def visible_records(user) -> Records:
    records = AuditEvent.objects.all()
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return Records([records.none()])
    if user.is_superuser:
        return Records([records])
    clusters = list(restrict(cluster_model().objects.all(), user, VIEW).values_list("pk", flat=True))
    admin_teams = list(teams_for(user, ADMIN).values_list("pk", flat=True))
    return Records(
        [
            records.filter(cluster_id__in=clusters),
            records.filter(cluster_id__isnull=True).filter(Q(team_id__in=admin_teams) | Q(actor_id=user.pk)),
        ]
    )


def search_details(records: QuerySet, text: str) -> QuerySet:
    """Records whose details contain ``text`` (case-insensitive substring of the JSON)."""
    from django.db import connection

    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if connection.vendor == "postgresql":
        return records.extra(where=["(audit_auditevent.details::text) ILIKE %s"], params=[pattern])
    return records.extra(where=["audit_auditevent.details LIKE %s ESCAPE '\\'"], params=[pattern])


@dataclass(frozen=True)
class ObjectHistory:
    """How the history of one kind of object is found. Audit sits below every domain app and
    knows none of their models, so the app that owns the object registers this
    (``register_history``), e.g. ``nodes.history`` for a machine's history page and the history's
    ``node`` filter."""

    condition: Callable[[int], Q]  # every record about the object with this primary key
    find: Callable[[Any, int], Any]  # the object, if this user may see it; else None
    story: Callable[[int, Any, QuerySet], Any]  # the summary above its records (has ``template``)


_histories: dict[str, ObjectHistory] = {}


def register_history(kind: str, history: ObjectHistory) -> None:
    _histories[kind] = history


def history_of(kind: str) -> ObjectHistory:
    return _histories[kind]


@dataclass
class Page:
    records: list[AuditEvent]
    newer: int | None  # ``after`` for the newer page, if any
    older: int | None  # ``before`` for the older page, if any


def _parts(records: Records | QuerySet) -> list[QuerySet]:
    return records.parts if isinstance(records, Records) else [records]


def newest(records: Records | QuerySet, *, before: int | None = None, size: int = PAGE_SIZE) -> list[AuditEvent]:
    """Up to ``size`` records older than ``before`` (or the newest), newest first."""
    rows: list[AuditEvent] = []
    for part in _parts(records):
        if before is not None:
            part = part.filter(id__lt=before)
        rows += part.order_by("-id")[:size]
    return sorted(rows, key=lambda event: event.id, reverse=True)[:size]


def _oldest_after(records: Records | QuerySet, after: int, size: int) -> list[AuditEvent]:
    rows: list[AuditEvent] = []
    for part in _parts(records):
        rows += part.filter(id__gt=after).order_by("id")[:size]
    return sorted(rows, key=lambda event: event.id)[:size]


def keyset_page(
    records: Records | QuerySet, *, before: int | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> Page:
    if after is not None:
        rows = _oldest_after(records, after, size + 1)
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        older = rows[-1].id if rows and newest(records, before=rows[-1].id, size=1) else None
        return Page(rows, rows[0].id if more_newer and rows else None, older)
    rows = newest(records, before=before, size=size + 1)
    more_older = len(rows) > size
    rows = rows[:size]
    newer = rows[0].id if before is not None and rows else None
    return Page(rows, newer, rows[-1].id if more_older else None)


def iterate(records: Records | QuerySet, batch: int = EXPORT_BATCH) -> Iterator[AuditEvent]:
    """Every record, newest first, in keyset batches: flat memory, no OFFSET, no long cursor."""
    before = None
    while True:
        rows = newest(records, before=before, size=batch)
        if not rows:
            return
        yield from rows
        before = rows[-1].id

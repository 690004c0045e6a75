"""Which records a user may read, the history filters, keyset pages and a node's story.

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

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from audit.models import AuditEvent
from clusters.models import Cluster
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


def visible_records(user) -> Records:
    records = AuditEvent.objects.all()
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return Records([records.none()])
    if user.is_superuser:
        return Records([records])
    clusters = list(restrict(Cluster.objects.all(), user, VIEW).values_list("pk", flat=True))
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


def node_story_filter(node_id: int) -> Q:
    """Everything about one machine: its own records, the operations that acted on it, the
    tokens made for it or named as the one it joined with, and records naming it in details."""
    from nodes.models import Node
    from operations.models import PhaseRun
    from tokens.models import BootstrapToken

    condition = Q(object_type="node", object_id=str(node_id))
    node = Node.objects.filter(pk=node_id).only("id", "name", "cluster_id").first()
    own = AuditEvent.objects.filter(object_type="node", object_id=str(node_id))
    cluster_id = node.cluster_id if node else own.values_list("cluster_id", flat=True).first()
    name = node.name if node else None
    if cluster_id is not None:
        in_cluster = Q(cluster_id=cluster_id)
        condition |= in_cluster & Q(details__node_id=node_id)
        if name:
            condition |= in_cluster & Q(details__node=name)
        token_ids = set(BootstrapToken.objects.filter(node_id=node_id).values_list("token_id", flat=True))
        for details in own.values_list("details", flat=True):
            if isinstance(details, dict) and isinstance(details.get("token_id"), str):
                token_ids.add(details["token_id"])
        if token_ids:
            token_pks = BootstrapToken.objects.filter(cluster_id=cluster_id, token_id__in=token_ids).values_list(
                "pk", flat=True
            )
            condition |= Q(object_type="bootstraptoken", object_id__in=[str(pk) for pk in token_pks])
            condition |= in_cluster & Q(details__token_id__in=sorted(token_ids))
        operation_ids = set(PhaseRun.objects.filter(node_id=node_id).values_list("operation_id", flat=True))
        if operation_ids:
            condition |= Q(object_type="operation", object_id__in=[str(pk) for pk in operation_ids])
    return condition


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

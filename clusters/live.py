"""The cluster page stays live without rebuilding it: versions of its live parts, and which changed.

The page carries the version of each part of ``clusters.panels.LIVE_PARTS`` and sends them back
every ``POLL_SECONDS``; a poll that finds every version unchanged is answered with nothing (204) after a few
small queries, and a change renders only the parts whose version moved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils.module_loading import import_string

from clusters import nodestatus
from clusters.models import Cluster
from clusters.panels import LIVE_PARTS, base_context

# A change shows within 2 s: at most one interval, plus the poll that brings it (1.5 s left a
# loaded browser and server 0.4 s of margin).
POLL_SECONDS = 1.0
# The versions travel as hidden inputs of this element (clusters/_live_versions.html).
VERSIONS_ID = "live-versions"


@dataclass(frozen=True)
class Update:
    versions: dict[str, str]
    parts: list[tuple[str, dict]]  # (template, context) of each part that changed


def clusters() -> QuerySet:
    """Clusters with the values the live parts' versions read from the cluster's own row."""
    # The live Node status's claim columns: a poll tells whether a refresh is due for no query.
    fields: dict = nodestatus.fields()
    for part in LIVE_PARTS:
        if part.fields:
            fields |= import_string(part.fields)()
    return Cluster.objects.select_related("team").annotate(**fields)


def versions(cluster) -> dict[str, str]:
    """The current version of every live part (element id -> short digest); ``cluster`` comes
    from :func:`clusters`. A part that includes others (``LivePart.includes``) digests their
    versions with its own, so it changes whenever one of them does."""
    current: dict[str, str] = {}
    for part in LIVE_PARTS:
        own = import_string(part.version)(cluster)
        current[part.element_id] = _digest([own, *(current[included] for included in part.includes)])
    return current


def selectors() -> str:
    """What a poll's answer may replace on the page (htmx's hx-select-oob)."""
    return ",".join(f"#{element_id}" for element_id in (VERSIONS_ID, *(part.element_id for part in LIVE_PARTS)))


def changes(cluster, user, known: Mapping[str, str]) -> Update | None:
    """The parts whose version differs from ``known`` (what the page holds), or None.

    The versions are read before the parts: a change between the two shows now and is
    rendered once more at the next poll, never missed."""
    current = versions(cluster)
    changed = [part for part in LIVE_PARTS if known.get(part.element_id) != current[part.element_id]]
    if not changed:
        return None
    base = base_context(cluster, user)
    return Update(current, [(part.template, base | import_string(part.context)(cluster, user)) for part in changed])


def _digest(value) -> str:
    # JSON with str() for the rest: a choice reads the same from the database (a str) and from
    # a model's default (an enum member), and a datetime as its ISO text.
    text = json.dumps(value, default=str, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

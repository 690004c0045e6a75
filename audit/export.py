"""Streamed exports of the history (CSV and JSON Lines): rows are read in keyset batches and
written as they come, so a huge range never sits in memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

from audit.models import AuditEvent
from audit.queries import iterate

COLUMNS = (
    "seq",
    "created",
    "actor",
    "action",
    "outcome",
    "object_type",
    "object_id",
    "object",
    "cluster",
    "details",
    "changes",
    "correlation_id",
    "source",
    "source_address",
    "user_agent",
    "hash",
)


def as_dict(event: AuditEvent) -> dict:
    return {
        "seq": event.seq,
        "created": event.created.isoformat(),
        "actor": event.actor_name,
        "action": event.action,
        "outcome": event.outcome,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object": event.object_repr,
        "cluster": event.cluster_name,
        "details": event.details,
        "changes": event.changes,
        "correlation_id": event.request_id,
        "source": event.source,
        "source_address": event.source_address,
        "user_agent": event.user_agent,
        "hash": event.hash,
    }


class _Line:
    """csv.writer target that hands back what it was given."""

    def write(self, value: str) -> str:
        return value


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for event in events:
        row = as_dict(event)
        row["details"] = json.dumps(row["details"], sort_keys=True)
        row["changes"] = json.dumps(row["changes"], sort_keys=True) if row["changes"] else ""
        yield writer.writerow([row[column] for column in COLUMNS])


def jsonl_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(as_dict(event), sort_keys=True) + "\n"


FORMATS = {
    "csv": ("text/csv; charset=utf-8", csv_lines),
    "jsonl": ("application/x-ndjson; charset=utf-8", jsonl_lines),
}


def streaming_response(records, fmt: str, filename: str) -> StreamingHttpResponse:
    content_type, lines = FORMATS[fmt]
    response = StreamingHttpResponse(lines(iterate(records)), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response

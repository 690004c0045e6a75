"""Streamed exports of the history (CSV and JSON Lines): rows are read in keyset batches and
written as they come, so a huge range never sits in memory.

Under daphne (ASGI) the body is an asynchronous iterator: Django would otherwise collect a
synchronous one into a list before sending it. Under WSGI (tests, a WSGI server) it is a
plain generator. Both read ``EXPORT_BATCH`` rows at a time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

from audit.models import AuditEvent
from audit.queries import EXPORT_BATCH, iterate, newest

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
        # What an auditor's offline check (audit/offline_verifier.py) needs beside the content:
        # the ids the HMAC covers, the key that made it and the link.
        "actor_id": event.actor_id,
        "cluster_id": event.cluster_id,
        "team_id": event.team_id,
        "key_id": event.key_id,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _csv(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def csv_row(event: AuditEvent) -> str:
    row = as_dict(event)
    row["details"] = json.dumps(row["details"], sort_keys=True)
    row["changes"] = json.dumps(row["changes"], sort_keys=True) if row["changes"] else ""
    return _csv([row[column] for column in COLUMNS])


def jsonl_row(event: AuditEvent) -> str:
    return json.dumps(as_dict(event), sort_keys=True) + "\n"


FORMATS = {
    "csv": ("text/csv; charset=utf-8", _csv(COLUMNS), csv_row),
    "jsonl": ("application/x-ndjson; charset=utf-8", "", jsonl_row),
}


def lines(records, fmt: str) -> Iterator[str]:
    _, header, row = FORMATS[fmt]
    if header:
        yield header
    for event in iterate(records):
        yield row(event)


def _batch(records, before: int | None) -> list[AuditEvent]:
    return newest(records, before=before, size=EXPORT_BATCH)


async def alines(records, fmt: str) -> AsyncIterator[str]:
    _, header, row = FORMATS[fmt]
    if header:
        yield header
    before = None
    while True:
        rows = await sync_to_async(_batch)(records, before)
        if not rows:
            return
        yield "".join(row(event) for event in rows)
        before = rows[-1].id


def streaming_response(request, records, fmt: str, filename: str) -> StreamingHttpResponse:
    content_type = FORMATS[fmt][0]
    body = alines(records, fmt) if isinstance(request, ASGIRequest) else lines(records, fmt)
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response

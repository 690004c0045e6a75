"""The live log of one operation over a websocket: replay from the database, then follow.

A client connects to ``/ws/operations/<id>/?after=<last seq it saw>``. It receives every
event with a larger sequence number exactly once and in order, whether the events come
from the database (replay, the embedded live feed, gap filling) or the channel layer.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from core.permissions import VIEW, restrict
from operations.events import operation_group
from operations.models import Event, Operation

log = logging.getLogger(__name__)

REPLAY_CHUNK = 1000

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400


@database_sync_to_async
def visible_operation(user, operation_id: int) -> Operation | None:
    return (
        restrict(Operation.objects.filter(pk=operation_id), user, VIEW)
        .only("id", "status", "last_seq", "heartbeat_at", "worker")
        .first()
    )


@database_sync_to_async
def events_after(operation_id: int, after: int, limit: int = REPLAY_CHUNK) -> list[dict]:
    rows = Event.objects.filter(operation_id=operation_id, seq__gt=after).order_by("seq")[:limit]
    return [row.as_message() for row in rows]


@database_sync_to_async
def operation_state(operation_id: int) -> tuple[str, int, object]:
    row = Operation.objects.filter(pk=operation_id).values_list("status", "last_seq", "heartbeat_at").first()
    return row if row else ("gone", 0, None)


@database_sync_to_async
def reap() -> int:
    from operations.services import reap_operations

    return reap_operations()


class OperationEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.operation_id = int(self.scope["url_route"]["kwargs"]["operation_id"])
        try:
            query = parse_qs(self.scope.get("query_string", b"").decode())
            self.last_sent = int(query.get("after", ["0"])[0])
            if self.last_sent < 0:
                raise ValueError
        except ValueError:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        if await visible_operation(user, self.operation_id) is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.lock = asyncio.Lock()
        self.layer_active = self.channel_layer is not None
        await self.accept()
        if self.layer_active:
            # Join the group before replaying: anything committed meanwhile arrives live and
            # is dropped by sequence number if replay already sent it.
            await self.channel_layer.group_add(operation_group(self.operation_id), self.channel_name)
        await self.catch_up()
        self.poller = asyncio.ensure_future(self.poll())

    async def disconnect(self, code) -> None:
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.cancel()
        if getattr(self, "layer_active", False):
            await self.channel_layer.group_discard(operation_group(self.operation_id), self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # The only client message is a ping that also asks for anything missed.
        if content.get("type") == "ping":
            await self.catch_up()
            await self.send_json({"type": "pong", "last_seq": self.last_sent})

    async def send_events(self, events: list[dict]) -> None:
        fresh = [event for event in events if event["seq"] > self.last_sent]
        if fresh:
            self.last_sent = fresh[-1]["seq"]
            await self.send_json({"type": "events", "events": fresh})

    async def catch_up(self) -> None:
        async with self.lock:
            await self._catch_up_locked()

    async def _catch_up_locked(self) -> None:
        while True:
            events = await events_after(self.operation_id, self.last_sent)
            await self.send_events(events)
            if len(events) < REPLAY_CHUNK:
                return

    async def operation_events(self, message: dict) -> None:
        """A batch published by the runner after it committed."""
        async with self.lock:
            events = message["events"]
            if events and events[0]["seq"] > self.last_sent + 1:
                # A message went missing (or arrived before replay finished): read the gap.
                await self._catch_up_locked()
            await self.send_events(events)

    async def poll(self) -> None:
        interval = settings.EVENT_SAFETY_POLL_SECONDS if self.layer_active else settings.EVENT_POLL_SECONDS
        lease = settings.OPERATION_LEASE_SECONDS
        try:
            while True:
                await asyncio.sleep(interval)
                status, last_seq, heartbeat_at = await operation_state(self.operation_id)
                if last_seq > self.last_sent:
                    await self.catch_up()
                if status == Operation.Status.RUNNING and heartbeat_at is not None:
                    if (timezone.now() - heartbeat_at).total_seconds() > lease:
                        await reap()
                if status not in Operation.ACTIVE_STATUSES and status != "gone":
                    # Finished: whatever follows (a resume) will be read at the slower pace.
                    interval = max(interval, settings.EVENT_SAFETY_POLL_SECONDS)
        except asyncio.CancelledError:
            return

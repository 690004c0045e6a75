"""The live log of one operation over a websocket: replay from the database, then follow.

A client connects to ``/ws/operations/<id>/?after=<last seq it saw>``. It receives every
event with a larger sequence number exactly once and in order, from this web process's
follower of the operation (``operations.fanout``), however the events reach it.

Refusals are sent after accepting, so the browser sees the close code (a close before
accepting arrives as a bare HTTP 403): a ``{"type": "refused", "code", "message"}`` message,
then the close. Codes: 4400 bad request (bad ``after``, a frame that is not a JSON ping or is
longer than ``MAX_FRAME_CHARS``),
4401 not logged in (or logged out, deactivated), 4403 not allowed (or no longer: removed
from the team), 4404 no such websocket path or operation deleted. A page should not retry
on any of them.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from operations import fanout

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
# A ping is 16 characters. Anything much longer is refused before it is parsed, so a frame of
# 100,000 nested brackets costs nothing (the JSON parser would recurse into a RecursionError).
MAX_FRAME_CHARS = 1024
CLOSE_UNAUTHENTICATED = fanout.CLOSE_UNAUTHENTICATED
CLOSE_FORBIDDEN = fanout.CLOSE_FORBIDDEN
CLOSE_NOT_FOUND = fanout.CLOSE_GONE

REASONS = {
    CLOSE_BAD_REQUEST: "bad request",
    CLOSE_UNAUTHENTICATED: "log in to follow this operation",
    CLOSE_FORBIDDEN: "you are not allowed to follow this operation",
    CLOSE_NOT_FOUND: "no such stream",
}

# Consumers get no channel of their own: the process's follower of an operation receives from
# the channel layer once for all of its watchers. (An alias that names no layer means none.)
NO_CHANNEL_LAYER = "kubeboard-consumers-receive-through-the-follower"


class RefusingConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = NO_CHANNEL_LAYER
    closing = False

    async def refuse(self, code: int, message: str | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        await self.send(json.dumps({"type": "refused", "code": code, "message": message or REASONS[code]}))
        await self.close(code=code)


class UnknownPathConsumer(RefusingConsumer):
    """Every websocket path nothing else routes: a clean close instead of a server error."""

    async def connect(self) -> None:
        await self.accept()
        await self.refuse(CLOSE_NOT_FOUND, f"no websocket at {self.scope.get('path', '')}")

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return


def parse_after(query_string: bytes) -> int:
    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    after = int(values[0])
    if after < 0 or after > 2**62:
        raise ValueError(after)
    return after


class OperationEventsConsumer(RefusingConsumer):
    watcher: fanout.Watcher | None = None
    hub: fanout.Hub | None = None

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        try:
            operation_id = int(self.scope["url_route"]["kwargs"]["operation_id"])
            if operation_id >= 2**63:  # no such row; SQLite cannot even compare it
                raise ValueError(operation_id)
            after = parse_after(self.scope.get("query_string", b""))
        except (ValueError, UnicodeDecodeError):
            await self.refuse(
                CLOSE_BAD_REQUEST, "expected /ws/operations/<id>/?after=<the last sequence number seen, 0 or more>"
            )
            return
        operation = await database_sync_to_async(fanout.visible_operation)(user, operation_id)
        if operation is None:
            await self.refuse(CLOSE_FORBIDDEN)
            return
        session = self.scope.get("session")
        self.watcher = fanout.Watcher(
            operation_id,
            after,
            user_id=user.pk,
            session_key=getattr(session, "session_key", None) if session is not None else None,
            send=self.send_text,
            close=self.revoked,
        )
        self.hub = fanout.hub()
        await self.hub.watch(self.watcher, operation.last_seq)

    async def send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def revoked(self, code: int) -> None:
        reasons = {
            CLOSE_UNAUTHENTICATED: "your session ended",
            CLOSE_FORBIDDEN: "your access to this operation was withdrawn",
            CLOSE_NOT_FOUND: "the operation was deleted",
        }
        await self.refuse(code, reasons.get(code))

    async def disconnect(self, code) -> None:
        if self.watcher is not None and self.hub is not None:
            self.watcher.closed = True
            self.hub.unwatch(self.watcher)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # The only client message is {"type": "ping"}; anything else ends the connection with
        # 4400 and one log line (a client's garbage is not a server error).
        if self.closing:
            return
        problem = None
        if text_data is None:
            problem = "a binary frame"
        elif len(text_data) > MAX_FRAME_CHARS:
            problem = f"a frame of {len(text_data)} characters (at most {MAX_FRAME_CHARS})"
        else:
            try:
                content = json.loads(text_data)
            except (ValueError, RecursionError):
                content = None
                problem = "a frame that is not JSON"
            if problem is None and not (isinstance(content, dict) and content.get("type") == "ping"):
                problem = 'a message other than {"type": "ping"}'
        if problem is not None:
            log.info("websocket %s: closing with %s after %s", self.scope.get("path"), CLOSE_BAD_REQUEST, problem)
            if self.watcher is not None and self.hub is not None:
                self.watcher.closed = True
                self.hub.unwatch(self.watcher)
            await self.refuse(CLOSE_BAD_REQUEST, f'expected {{"type": "ping"}}, got {problem}')
            return
        last = self.watcher.last_sent if self.watcher is not None else 0
        await self.send(json.dumps({"type": "pong", "last_seq": last}))

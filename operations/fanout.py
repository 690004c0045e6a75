"""Live operation events in a web process: one follower per operation, however many watch it.

Every websocket watching an operation is a *watcher* of this process's one *follower* of that
operation. The follower learns about new events from the channel layer (with Redis it has one
channel in the operation's group, whatever the number of watchers) or from the hub's poll of
the database (one query for all followed operations per interval, then one read per operation
that has new events). It fills gaps left by a dropped or reordered layer message with one
database read shared by all its watchers, and hands each batch, encoded once, to every watcher.

A watcher that connects with ``?after=N`` first replays what it missed: from the follower's
memory of recent events when that reaches back far enough, else from the database in chunks
(its own read: no other watcher needs those rows). Batches arriving meanwhile wait in the
watcher's queue; sequence numbers make the seam exact, so every event reaches it exactly once
and in order.

The hub also re-checks every watcher's access (``core.permissions.restrict``) in one batch of
queries per interval, and at once for a user announced by ``core.access``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.db.models import Value
from django.utils import timezone

from core import access, sessions
from core.permissions import VIEW, restrict
from operations.events import operation_group
from operations.models import Event, Operation

log = logging.getLogger(__name__)

REPLAY_CHUNK = 1000
# Per follower: recent events kept in memory, so a reconnecting client or a new tab usually
# replays without reading the database.
RECENT_EVENTS = 2000
# A canary sent through the channel layer must come back this fast, or the layer is reset.
CANARY_TIMEOUT_SECONDS = 5.0

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_GONE = 4404


def encode(events: list[dict]) -> str:
    return json.dumps({"type": "events", "events": events}, separators=(",", ":"))


# --- database reads (run in the hub's one database thread) ----------------------------------


def events_after(operation_id: int, after: int, limit: int = REPLAY_CHUNK) -> list[dict]:
    rows = Event.objects.filter(operation_id=operation_id, seq__gt=after).order_by("seq")[:limit]
    return [row.as_message() for row in rows]


def operation_states(operation_ids: list[int]) -> dict[int, tuple[str, int, object]]:
    rows = Operation.objects.filter(pk__in=operation_ids).values_list("pk", "status", "last_seq", "heartbeat_at")
    return {pk: (status, last_seq, heartbeat_at) for pk, status, last_seq, heartbeat_at in rows}


def visible_operation(user, operation_id: int) -> Operation | None:
    return restrict(Operation.objects.filter(pk=operation_id), user, VIEW).only("id", "last_seq").first()


def reap() -> int:
    from operations.services import reap_operations

    return reap_operations()


def access_verdicts(entries: list[tuple[int, str | None, int]]) -> dict[tuple[int, str | None, int], int | None]:
    """For (user id, session key, operation id) triples: None if the stream may go on, else the
    close code. A fixed number of queries however many watchers: users, sessions, and one
    union of ``restrict`` querysets (one branch per user)."""
    from django.contrib.auth import get_user_model

    users = get_user_model()._default_manager.in_bulk({user_id for user_id, _, _ in entries})
    live_sessions = _live_sessions({key for _, key, _ in entries if key})
    wanted: dict[int, set[int]] = defaultdict(set)
    for user_id, _, operation_id in entries:
        user = users.get(user_id)
        if user is not None and user.is_active:
            wanted[user_id].add(operation_id)
    allowed: set[tuple[int, int]] = set()
    branches = [
        restrict(Operation.objects.filter(pk__in=ops), users[user_id], VIEW)
        .order_by()
        .annotate(watcher=Value(user_id))
        .values_list("pk", "watcher")
        for user_id, ops in wanted.items()
    ]
    # SQLite allows 500 terms in one compound SELECT.
    for start in range(0, len(branches), 400):
        part = branches[start : start + 400]
        query = part[0].union(*part[1:], all=True) if len(part) > 1 else part[0]
        allowed.update((pk, user_id) for pk, user_id in query)
    verdicts = {}
    for entry in entries:
        user_id, key, operation_id = entry
        user = users.get(user_id)
        session_ended = live_sessions is not None and key is not None and key not in live_sessions
        if not session_ended and user is not None and live_sessions and key in live_sessions:
            # A password changed behind the signals' back (raw SQL) ends the session as well.
            session_ended = not sessions.session_still_valid(sessions.decode(live_sessions[key]), user)
        if user is None or not user.is_active or session_ended:
            verdicts[entry] = CLOSE_UNAUTHENTICATED
        elif (operation_id, user_id) not in allowed:
            verdicts[entry] = CLOSE_FORBIDDEN
        else:
            verdicts[entry] = None
    return verdicts


def _live_sessions(keys: set[str]) -> dict[str, str] | None:
    """The data of the sessions that still exist and have not expired, by key; None if sessions
    are not in the database."""
    if not sessions.sessions_in_database():
        return None
    from django.contrib.sessions.models import Session

    if not keys:
        return {}
    return dict(
        Session.objects.filter(session_key__in=keys, expire_date__gt=timezone.now()).values_list(
            "session_key", "session_data"
        )
    )


def _in_db_thread(func: Callable, args: tuple):
    try:
        return func(*args)
    except Exception:
        # This thread keeps its connection between calls; a broken one must not be reused.
        connection.close()
        raise


def _close_connection() -> None:
    connection.close()


# --- watchers and followers -------------------------------------------------------------------


class Watcher:
    """One websocket following one operation. ``send`` takes a JSON text; ``close`` a code."""

    def __init__(
        self,
        operation_id: int,
        after: int,
        *,
        user_id: int,
        session_key: str | None,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int], Awaitable[None]],
    ) -> None:
        self.operation_id = operation_id
        self.last_sent = after
        self.user_id = user_id
        self.session_key = session_key
        self.session_fingerprint = access.session_fingerprint(session_key)
        self._send = send
        self._close = close
        self.replaying = True
        self.pending: deque[tuple[list[dict], str | None]] = deque()
        self.closed = False

    async def deliver(self, events: list[dict], text: str | None = None) -> None:
        """Send what this watcher has not seen yet; ``text`` is ``events`` already encoded."""
        if self.closed or not events or events[-1]["seq"] <= self.last_sent:
            return
        if events[0]["seq"] <= self.last_sent:
            events = [event for event in events if event["seq"] > self.last_sent]
            text = None
        self.last_sent = events[-1]["seq"]
        await self._send(text or encode(events))

    async def offer(self, events: list[dict], text: str) -> None:
        """A live batch from the follower: sent now, or queued while the replay runs."""
        if self.replaying:
            self.pending.append((events, text))
        else:
            await self.deliver(events, text)

    async def close(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            await self._close(code)


class Follower:
    """Follows one operation for every watcher of it in this process."""

    def __init__(self, hub: Hub, operation_id: int, seq: int) -> None:
        self.hub = hub
        self.operation_id = operation_id
        self.seq = seq  # every event up to here has been handed to the watchers
        self.recent: deque[dict] = deque(maxlen=RECENT_EVENTS)
        self.watchers: set[Watcher] = set()
        self._inbox: list[list[dict]] = []
        self._target = seq  # the database is known to hold events up to here
        self._seen_by_poll = seq
        self._wake = asyncio.Event()
        self._tasks = [asyncio.ensure_future(self._run())]
        self.channel: str | None = None
        self.joined = asyncio.Event()  # in the operation's layer group (set at once without a layer)
        self._listener: asyncio.Task | None = None
        self._resync = False
        if hub.layer is None:
            self.joined.set()
        else:
            self.listen()

    def covers(self, after: int) -> bool:
        """True if the events after ``after`` that this follower has seen are all in memory."""
        base = self.recent[0]["seq"] - 1 if self.recent else self.seq
        return after >= base

    def known(self, last_seq: int) -> None:
        """The database holds events up to ``last_seq`` (from the hub's poll).

        Embedded, the poll is the feed: read at once. With a layer, the batch is most likely
        in flight; read only if the previous poll already saw events this follower still lacks
        (a lost message), so a busy stream costs no extra query."""
        previous, self._seen_by_poll = self._seen_by_poll, last_seq
        if last_seq <= self.seq:
            self._resync = False
            return
        if self.hub.layer is None or self.seq < previous or self._resync:  # also retries a failed read
            self._resync = False
            self._target = max(self._target, last_seq)
            self._wake.set()

    def received(self, events: list[dict]) -> None:
        """A batch published by a runner after it committed."""
        if events and events[-1]["seq"] > self.seq:
            self._inbox.append(events)
            self._wake.set()

    def resync(self) -> None:
        """The layer may have lost messages (it reconnected): let the next poll read at once."""
        self._resync = True

    def stop(self) -> None:
        for task in [*self._tasks, self._listener]:
            if task is not None:
                task.cancel()
        if self.channel is not None:
            self.hub.spawn(self.hub.layer.group_discard(operation_group(self.operation_id), self.channel))

    def listen(self) -> None:
        """(Re)start receiving this operation's batches from the layer on a new channel."""
        if self._listener is not None:
            self._listener.cancel()
        self.channel = None
        self.joined.clear()
        self._listener = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        layer = self.hub.layer
        group = operation_group(self.operation_id)
        while True:
            try:
                self.channel = await layer.new_channel()
                await layer.group_add(group, self.channel)
                self.joined.set()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "operation %s: cannot join %s (%s); the database poll delivers meanwhile",
                    self.operation_id,
                    group,
                    exc,
                )
                await asyncio.sleep(settings.EVENT_SAFETY_POLL_SECONDS)
        while True:
            try:
                message = await layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("operation %s: channel layer receive failed (%s)", self.operation_id, exc)
                await asyncio.sleep(settings.EVENT_SAFETY_POLL_SECONDS)
                continue
            if message.get("type") == "operation.events":
                self.received(message.get("events") or [])

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batches, self._inbox = self._inbox, []
            try:
                await self._advance(batches)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Nothing was marked as delivered; the next poll wakes this follower again.
                log.warning(
                    "operation %s: could not read new events (%s: %s)", self.operation_id, type(exc).__name__, exc
                )

    async def _advance(self, batches: list[list[dict]]) -> None:
        fresh: dict[int, dict] = {}
        for batch in batches:
            for event in batch:
                if event["seq"] > self.seq:
                    fresh[event["seq"]] = event
            if batch:
                self._target = max(self._target, batch[-1]["seq"])
        while self.seq < self._target:
            run = []
            while self.seq + len(run) + 1 in fresh:
                run.append(fresh[self.seq + len(run) + 1])
            if not run:
                # A gap (a lost or late layer message, or the poll saw new rows): one read for all.
                run = [e for e in await self.hub.db(events_after, self.operation_id, self.seq) if e["seq"] > self.seq]
                if not run:
                    return
            await self._broadcast(run)

    async def _broadcast(self, events: list[dict]) -> None:
        self.seq = events[-1]["seq"]
        self._target = max(self._target, self.seq)
        self.recent.extend(events)
        text = encode(events)
        for watcher in list(self.watchers):
            await watcher.offer(events, text)


# --- the hub: one per event loop (i.e. per web process) -----------------------------------------


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.layer = get_channel_layer()
        self.followers: dict[int, Follower] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeboard-fanout-db")
        self._tasks: set[asyncio.Future] = set()
        self._poller: asyncio.Task | None = None
        # The hub's own layer channel: users' access groups and its canary group.
        self._control_channel: str | None = None
        self._control_reader: asyncio.Task | None = None
        self._control_wanted: set[str] = set()
        self._control_joined: set[str] = set()
        self._canary_group = f"fanout-canary-{uuid.uuid4().hex}"
        self._canary_due: float | None = None  # loop time by which the last canary must be back
        self._layer_lost = False
        self._stopped = False
        self._listener = self._access_announced_threadsafe
        access.add_listener(self._listener)

    # -- plumbing

    async def db(self, func: Callable, *args):
        """Run ``func`` in this hub's database thread, which keeps one connection open."""
        return await self.loop.run_in_executor(self._executor, _in_db_thread, func, args)

    def spawn(self, awaitable: Awaitable) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def watchers(self) -> list[Watcher]:
        return [watcher for follower in self.followers.values() for watcher in follower.watchers]

    # -- watching

    async def watch(self, watcher: Watcher, last_seq: int) -> None:
        """Register ``watcher``, replay what it missed, then let live batches through."""
        follower = self.followers.get(watcher.operation_id)
        if follower is None:
            follower = self.followers[watcher.operation_id] = Follower(self, watcher.operation_id, last_seq)
        follower.watchers.add(watcher)  # from here on, live batches queue up for it
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll_forever())
        if self.layer is not None:
            self._control_wanted.update({access.access_group(watcher.user_id), self._canary_group})
            await self._sync_control()
            # Replay after joining, so that nothing published meanwhile waits for the safety poll.
            try:
                await asyncio.wait_for(follower.joined.wait(), 5)
            except TimeoutError:
                pass
        await self._replay(follower, watcher)

    async def _replay(self, follower: Follower, watcher: Watcher) -> None:
        while not watcher.closed:
            if follower.covers(watcher.last_sent):
                await watcher.deliver([event for event in follower.recent if event["seq"] > watcher.last_sent])
                break
            rows = await self.db(events_after, watcher.operation_id, watcher.last_sent)
            await watcher.deliver(rows)
            if len(rows) < REPLAY_CHUNK:
                break
        while watcher.pending and not watcher.closed:
            events, text = watcher.pending.popleft()
            await watcher.deliver(events, text)
        watcher.replaying = False

    def unwatch(self, watcher: Watcher) -> None:
        follower = self.followers.get(watcher.operation_id)
        if follower is None:
            return
        follower.watchers.discard(watcher)
        if not follower.watchers:
            del self.followers[watcher.operation_id]
            follower.stop()
        if not self.followers:
            self.stop()

    def stop(self) -> None:
        """Nobody watches anything in this process any more: release tasks, thread and groups."""
        if self._stopped:
            return
        self._stopped = True
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self._control_reader is not None:
            self._control_reader.cancel()
            self._control_reader = None
        if self._control_channel is not None:
            channel, self._control_channel = self._control_channel, None
            for group in self._control_joined:
                self.spawn(self.layer.group_discard(group, channel))
            self._control_joined = set()
        access.remove_listener(self._listener)
        self._executor.submit(_close_connection)
        self._executor.shutdown(wait=False)
        if _hubs.get(self.loop) is self:
            del _hubs[self.loop]

    # -- polling the database

    async def _poll_forever(self) -> None:
        last_access_check = self.loop.time()
        while self.followers:
            interval = settings.EVENT_SAFETY_POLL_SECONDS if self.layer is not None else settings.EVENT_POLL_SECONDS
            await asyncio.sleep(interval)
            try:
                if self.layer is not None:
                    await self.check_layer()
                await self.poll()
                if self.loop.time() - last_access_check >= settings.STREAM_ACCESS_CHECK_SECONDS:
                    last_access_check = self.loop.time()
                    await self.check_access()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live event poll failed (%s: %s); retrying", type(exc).__name__, exc)

    async def poll(self) -> None:
        """One query for the state of every followed operation; wake those with new events."""
        if not self.followers:
            return
        asked = list(self.followers)
        states = await self.db(operation_states, asked)
        lease = timedelta(seconds=settings.OPERATION_LEASE_SECONDS)
        now = timezone.now()
        stale = False
        for operation_id in asked:
            follower = self.followers.get(operation_id)
            if follower is None:  # its last watcher left meanwhile
                continue
            state = states.get(operation_id)
            if state is None:  # deleted
                for watcher in list(follower.watchers):
                    await self.revoke(watcher, CLOSE_GONE)
                continue
            status, last_seq, heartbeat_at = state
            follower.known(last_seq)
            if status == Operation.Status.RUNNING and heartbeat_at is not None and now - heartbeat_at > lease:
                stale = True
        if stale and self.followers:
            # Nobody else may be watching the workers; a watcher notices a dead one within a lease.
            await self.db(reap)

    # -- access

    async def revoke(self, watcher: Watcher, code: int) -> None:
        self.unwatch(watcher)
        await watcher.close(code)

    async def check_access(self, user_ids: set[int] | None = None) -> None:
        watchers = [w for w in self.watchers() if user_ids is None or w.user_id in user_ids]
        if not watchers:
            return
        entries = list({(w.user_id, w.session_key, w.operation_id) for w in watchers})
        verdicts = await self.db(access_verdicts, entries)
        for watcher in watchers:
            code = verdicts.get((watcher.user_id, watcher.session_key, watcher.operation_id))
            if code is not None:
                log.info(
                    "closing the stream of operation %s for user %s: access lost (%s)",
                    watcher.operation_id,
                    watcher.user_id,
                    code,
                )
                await self.revoke(watcher, code)

    def _access_announced_threadsafe(self, message: dict) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.access_announced, message)

    def access_announced(self, message: dict) -> None:
        user_id = message.get("user")
        ended = message.get("ended_session") or ""

        async def handle() -> None:
            for watcher in self.watchers():
                if ended and watcher.user_id == user_id and watcher.session_fingerprint == ended:
                    await self.revoke(watcher, CLOSE_UNAUTHENTICATED)
            try:
                await self.check_access({user_id})
            except Exception as exc:
                log.warning("re-checking the streams of user %s failed (%s); the periodic check retries", user_id, exc)

        self.spawn(handle())

    # -- the hub's own layer channel, and the canary that proves the layer still delivers

    async def _sync_control(self) -> None:
        """Join the groups the hub wants (users' access groups, its canary group); retried by
        every poll while the layer is unreachable."""
        try:
            if self._control_channel is None:
                self._control_channel = await self.layer.new_channel()
                self._control_reader = asyncio.ensure_future(self._read_control(self._control_channel))
            for group in self._control_wanted - self._control_joined:
                await self.layer.group_add(group, self._control_channel)
                self._control_joined.add(group)
        except Exception as exc:
            log.warning("cannot join the channel layer's groups yet (%s); the database poll delivers meanwhile", exc)

    async def _read_control(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("channel layer receive failed (%s)", exc)
                await asyncio.sleep(settings.EVENT_SAFETY_POLL_SECONDS)
                continue
            if message.get("type") == access.MESSAGE_TYPE:
                self.access_announced(message)
            elif message.get("type") == "fanout.canary":
                self._canary_due = None
                if self._layer_lost:
                    self._layer_lost = False
                    log.warning("the channel layer delivers again; live events flow through it")

    async def check_layer(self) -> None:
        """Send a canary through the layer to this hub; if the previous one did not come back in
        time, the layer's subscriptions are gone (Redis restarted: pub/sub keeps nothing and
        channels-redis does not subscribe again), so reconnect and re-join everything."""
        await self._sync_control()
        now = self.loop.time()
        if self._canary_due is not None and now > self._canary_due:
            await self.reconnect_layer()
            return
        if self._canary_due is None:
            self._canary_due = now + CANARY_TIMEOUT_SECONDS
            try:
                await self.layer.group_send(self._canary_group, {"type": "fanout.canary"})
            except Exception:
                pass  # the deadline speaks for it

    async def reconnect_layer(self) -> None:
        if not self._layer_lost:
            log.warning(
                "the channel layer stopped delivering (a canary did not come back within %ss); reconnecting. "
                "Live events come from the database meanwhile.",
                CANARY_TIMEOUT_SECONDS,
            )
        self._layer_lost = True
        self._canary_due = None
        try:
            await self.layer.flush()  # drops this process's connections and subscriptions
        except Exception as exc:
            log.warning("resetting the channel layer failed (%s)", exc)
        if self._control_reader is not None:
            self._control_reader.cancel()
        self._control_reader = self._control_channel = None
        self._control_joined = set()
        for follower in list(self.followers.values()):
            follower.listen()
            follower.resync()  # what was published meanwhile is in the database only
        await self._sync_control()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (daphne runs one loop per process)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(loop)
    return found

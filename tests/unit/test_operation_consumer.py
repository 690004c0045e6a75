"""The websocket consumer in-process (Channels' communicator): access, replay, live, gaps,
refusals the browser can see, garbage from clients, access withdrawn while a stream is open,
and one follower per operation however many watch it."""

import asyncio
import json
import logging
import threading
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Group
from django.contrib.sessions.backends.db import SessionStore
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from core.models import TeamMembership
from operations import fanout
from operations.events import EventWriter, operation_group
from operations.models import Event, Operation
from operations.routing import websocket_urlpatterns
from tests.factories import make_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

IN_MEMORY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def operation(make_user):
    team = Group.objects.create(name="blue")
    cluster = make_cluster(team=team)
    op = Operation.objects.create(
        cluster=cluster, kind="prepare-identity", status=Operation.Status.RUNNING, worker="w:1"
    )
    return op


@pytest.fixture
def member(make_user):
    return make_user("bob", team="blue")


def add_events(operation, count):
    op = Operation.objects.get(pk=operation.pk)
    writer = EventWriter(op, flush_count=10_000, flush_seconds=60, on_publish=lambda *a: None)
    for index in range(count):
        writer.emit(f"line {index}")
    writer.flush()
    return writer.seq


def new_session(user) -> SessionStore:
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session.create()
    return session


async def open_socket(path, user, session=None):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    if session is not None:
        communicator.scope["session"] = session
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def connect(operation_id, user, after=0, session=None):
    communicator, connected = await open_socket(f"/ws/operations/{operation_id}/?after={after}", user, session)
    assert connected, "the consumer accepts first and refuses afterwards, so the browser sees why"
    return communicator


async def live(communicator) -> None:
    """Wait until the stream is registered with its follower: the consumer answers a ping only
    after its connect handler (registration and replay) is done."""
    await communicator.send_json_to({"type": "ping"})
    message = await communicator.receive_json_from(timeout=5)
    while message["type"] == "events":
        message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "pong"


async def expect_refusal(communicator, code, timeout=5.0):
    """The refusal message, then the close frame with ``code``."""
    message = await communicator.receive_output(timeout)
    while message["type"] == "websocket.send" and json.loads(message["text"])["type"] == "events":
        message = await communicator.receive_output(timeout)
    assert message["type"] == "websocket.send", message
    refusal = json.loads(message["text"])
    assert refusal["type"] == "refused" and refusal["code"] == code and refusal["message"]
    closing = await communicator.receive_output(timeout)
    assert closing == {"type": "websocket.close", "code": code}
    return refusal


async def receive_seqs(communicator, until_seq, timeout=5.0):
    seqs = []
    while not seqs or seqs[-1] < until_seq:
        message = await communicator.receive_json_from(timeout=timeout)
        assert message["type"] == "events"
        seqs.extend(event["seq"] for event in message["events"])
    return seqs


# --- refusals the page can read --------------------------------------------------------------


async def test_anonymous_is_closed_with_4401_after_accepting(operation):
    communicator = await connect(operation.pk, AnonymousUser())
    await expect_refusal(communicator, 4401)


async def test_user_outside_the_team_is_closed_with_4403(operation, make_user):
    outsider = await database_sync_to_async(make_user)("eve", team="red")
    communicator = await connect(operation.pk, outsider)
    await expect_refusal(communicator, 4403)


async def test_missing_operation_looks_like_a_foreign_one(operation, member):
    communicator = await connect(operation.pk + 1000, member)
    await expect_refusal(communicator, 4403)


@pytest.mark.parametrize("after", ["-3", "x", "1e3", str(2**63)])
async def test_bad_after_is_closed_with_4400(operation, member, after):
    communicator = await connect(operation.pk, member, after=after)
    await expect_refusal(communicator, 4400)


async def test_an_absurd_operation_id_is_a_bad_request_not_a_crash(member, caplog):
    communicator, connected = await open_socket(f"/ws/operations/{10**30}/", member)
    assert connected
    await expect_refusal(communicator, 4400)
    assert not [r for r in caplog.records if r.exc_info]


async def test_unrouted_websocket_path_closes_with_4404(member):
    for path in ("/ws/nothing/", "/ws/operations/abc/", "/"):
        communicator, connected = await open_socket(path, member)
        assert connected
        refusal = await expect_refusal(communicator, 4404)
        assert path in refusal["message"]


async def test_unrouted_path_through_the_whole_application_is_no_server_error():
    from config.asgi import application

    communicator = WebsocketCommunicator(
        application, "/ws/does-not-exist/", headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await expect_refusal(communicator, 4404)


@pytest.mark.parametrize(
    "frame",
    [
        {"text_data": "not json at all"},
        {"text_data": "[1, 2, 3]"},
        {"text_data": '{"type": "subscribe", "operation": 7}'},
        {"text_data": '"ping"'},
        {"bytes_data": b"\x00\x01binary"},
    ],
    ids=["not-json", "a-list", "unknown-type", "a-string", "binary"],
)
async def test_malformed_frame_closes_with_4400_without_a_traceback(operation, member, frame, caplog):
    await database_sync_to_async(add_events)(operation, 2)
    communicator = await connect(operation.pk, member)
    assert await receive_seqs(communicator, 2) == [1, 2]
    with caplog.at_level(logging.DEBUG):
        await communicator.send_to(**frame)
        await expect_refusal(communicator, 4400)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]
    assert any("4400" in r.getMessage() for r in caplog.records)
    await communicator.wait(timeout=1)


async def test_ping_is_answered_with_the_last_sequence_number_sent(operation, member):
    await database_sync_to_async(add_events)(operation, 3)
    communicator = await connect(operation.pk, member)
    assert await receive_seqs(communicator, 3) == [1, 2, 3]
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong", "last_seq": 3}
    await communicator.disconnect()


async def test_origin_from_another_site_is_refused(operation, member):
    from config.asgi import application

    communicator = WebsocketCommunicator(
        application,
        f"/ws/operations/{operation.pk}/",
        headers=[(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1")],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


# --- replay and live ---------------------------------------------------------------------------


async def test_replay_then_reconnect_gets_exactly_the_missed_events(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    await database_sync_to_async(add_events)(operation, 30)
    communicator = await connect(operation.pk, member)
    assert await receive_seqs(communicator, 30) == list(range(1, 31))
    await communicator.disconnect()

    await database_sync_to_async(add_events)(operation, 20)  # written while the client was away
    communicator = await connect(operation.pk, member, after=30)
    assert await receive_seqs(communicator, 50) == list(range(31, 51))
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_replay_longer_than_one_chunk_arrives_whole(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    total = fanout.REPLAY_CHUNK * 2 + 17
    await database_sync_to_async(add_events)(operation, total)
    communicator = await connect(operation.pk, member, after=5)
    assert await receive_seqs(communicator, total) == list(range(6, total + 1))
    await communicator.disconnect()


async def test_embedded_live_feed_reads_the_database(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    communicator = await connect(operation.pk, member)
    assert await communicator.receive_nothing(timeout=0.3)
    await database_sync_to_async(add_events)(operation, 5)
    assert await receive_seqs(communicator, 5) == [1, 2, 3, 4, 5]
    await communicator.disconnect()


async def test_live_layer_with_a_dropped_message_loses_nothing(operation, member, settings):
    settings.CHANNEL_LAYERS = IN_MEMORY_LAYER
    settings.EVENT_SAFETY_POLL_SECONDS = 3600  # only the layer and gap filling may deliver
    layer = get_channel_layer()
    communicator = await connect(operation.pk, member)
    await database_sync_to_async(add_events)(operation, 3)  # stored, but never published: a "lost" message
    # The next published batch starts at seq 4: the follower sees the gap and reads 1-3 first.
    await database_sync_to_async(add_events)(operation, 2)
    rows = await database_sync_to_async(
        lambda: [e.as_message() for e in Event.objects.filter(operation=operation, seq__gte=4)]
    )()
    await layer.group_send(operation_group(operation.pk), {"type": "operation.events", "events": rows})
    assert await receive_seqs(communicator, 5) == [1, 2, 3, 4, 5]
    # A duplicate delivery of an old batch is dropped.
    await layer.group_send(operation_group(operation.pk), {"type": "operation.events", "events": rows})
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_stale_operation_is_reaped_by_a_watching_client(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    settings.OPERATION_LEASE_SECONDS = 1
    await database_sync_to_async(
        lambda: Operation.objects.filter(pk=operation.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=5))
    )()
    communicator = await connect(operation.pk, member)
    messages = []
    while not any(e["kind"] == "status" for m in messages for e in m["events"]):
        messages.append(await communicator.receive_json_from(timeout=5))
    status = [e for m in messages for e in m["events"] if e["kind"] == "status"][0]
    assert status["data"]["status"] == "interrupted"
    await communicator.disconnect()


# --- one follower per operation ----------------------------------------------------------------


async def eventually(condition, timeout=5.0):
    """Accepting comes first; the consumer registers its watcher a moment later."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class QueryLog:
    """Every SQL statement any thread of this process runs, with the thread's name."""

    def __init__(self, monkeypatch) -> None:
        self.statements: list[tuple[str, str]] = []
        original = CursorWrapper.execute
        log = self.statements

        def execute(cursor, sql, params=None):
            log.append((threading.current_thread().name, sql))
            return original(cursor, sql, params)

        monkeypatch.setattr(CursorWrapper, "execute", execute)

    def mark(self) -> int:
        return len(self.statements)

    def since(self, mark: int, table: str) -> list[str]:
        return [
            sql
            for _, sql in self.statements[mark:]
            if f'"{table}"' in sql and sql.lstrip().upper().startswith("SELECT")
        ]


async def test_twenty_watchers_cost_the_queries_of_one(operation, make_user, settings, monkeypatch):
    """Per poll: one state query for all followed operations and one read of the new events,
    whatever the number of watchers; every watcher still gets every event once, in order."""
    settings.CHANNEL_LAYERS = {}
    settings.EVENT_POLL_SECONDS = 3600  # this test drives the polls itself
    settings.STREAM_ACCESS_CHECK_SECONDS = 3600
    users = [await database_sync_to_async(make_user)(f"viewer{i}", team="blue") for i in range(4)]
    sessions = [await database_sync_to_async(new_session)(user) for user in users]
    sockets = [await connect(operation.pk, users[i % 4], session=sessions[i % 4]) for i in range(20)]
    hub = fanout.hub()
    await eventually(lambda: operation.pk in hub.followers and len(hub.followers[operation.pk].watchers) == 20)
    assert list(hub.followers) == [operation.pk]
    queries = QueryLog(monkeypatch)

    await database_sync_to_async(add_events)(operation, 50)
    mark = queries.mark()
    await hub.poll()
    for communicator in sockets:
        assert await receive_seqs(communicator, 50) == list(range(1, 51))
    assert len(queries.since(mark, "operations_operation")) == 1
    assert len(queries.since(mark, "operations_event")) == 1

    mark = queries.mark()
    await hub.check_access()
    assert len(queries.statements) - mark == 3  # users, sessions, one union of restrict() querysets
    for communicator in sockets:
        assert await communicator.receive_nothing(timeout=0.05)
        await communicator.disconnect()
    assert fanout._hubs.get(asyncio.get_running_loop()) is None, "the last watcher gone, the hub is released"


async def test_a_gap_is_read_once_for_all_watchers(operation, make_user, settings, monkeypatch):
    settings.CHANNEL_LAYERS = IN_MEMORY_LAYER
    settings.EVENT_SAFETY_POLL_SECONDS = 3600
    layer = get_channel_layer()
    sockets = [
        await connect(operation.pk, await database_sync_to_async(make_user)(f"v{i}", team="blue")) for i in range(10)
    ]
    queries = QueryLog(monkeypatch)
    await database_sync_to_async(add_events)(operation, 7)  # 1-7 never published
    await database_sync_to_async(add_events)(operation, 3)
    rows = await database_sync_to_async(
        lambda: [e.as_message() for e in Event.objects.filter(operation=operation, seq__gt=7)]
    )()
    mark = queries.mark()
    await layer.group_send(operation_group(operation.pk), {"type": "operation.events", "events": rows})
    for communicator in sockets:
        assert await receive_seqs(communicator, 10) == list(range(1, 11))
    assert len(queries.since(mark, "operations_event")) == 1
    for communicator in sockets:
        await communicator.disconnect()


async def test_a_new_tab_replays_from_the_followers_memory(operation, member, settings, monkeypatch):
    settings.CHANNEL_LAYERS = {}
    first = await connect(operation.pk, member)
    await database_sync_to_async(add_events)(operation, 40)
    assert await receive_seqs(first, 40) == list(range(1, 41))
    queries = QueryLog(monkeypatch)
    mark = queries.mark()
    second = await connect(operation.pk, member, after=10)
    assert await receive_seqs(second, 40) == list(range(11, 41))
    assert queries.since(mark, "operations_event") == []
    await first.disconnect()
    await second.disconnect()


# --- access withdrawn while streams are open ----------------------------------------------------


async def test_removed_from_the_team_loses_every_open_stream_at_once(operation, member, make_user, settings):
    settings.CHANNEL_LAYERS = {}
    settings.STREAM_ACCESS_CHECK_SECONDS = 3600  # no periodic check: the signal must do it
    other = await database_sync_to_async(make_user)("carol", team="blue")
    mine = [await connect(operation.pk, member) for _ in range(3)]
    theirs = await connect(operation.pk, other)
    await database_sync_to_async(add_events)(operation, 2)
    for communicator in [*mine, theirs]:
        assert await receive_seqs(communicator, 2) == [1, 2]

    await database_sync_to_async(lambda: TeamMembership.objects.filter(user=member).delete())()
    for communicator in mine:
        await expect_refusal(communicator, 4403, timeout=2)
    await database_sync_to_async(add_events)(operation, 1)
    assert await receive_seqs(theirs, 3) == [3]
    await theirs.disconnect()


async def test_access_removed_behind_the_signals_back_is_caught_by_the_periodic_check(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    settings.STREAM_ACCESS_CHECK_SECONDS = 0.2
    communicator = await connect(operation.pk, member)
    red = await database_sync_to_async(Group.objects.create)(name="red")
    # A queryset update sends no signal: only the periodic re-check can notice.
    await database_sync_to_async(lambda: TeamMembership.objects.filter(user=member).update(team=red))()
    await expect_refusal(communicator, 4403, timeout=3)


async def test_deactivated_user_loses_the_stream(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    settings.STREAM_ACCESS_CHECK_SECONDS = 3600
    communicator = await connect(operation.pk, member)
    await live(communicator)

    def deactivate():
        member.is_active = False
        member.save()

    await database_sync_to_async(deactivate)()
    await expect_refusal(communicator, 4401, timeout=2)


async def test_logout_ends_the_streams_of_that_browser_only(operation, member, settings):
    from django.contrib.auth import logout
    from django.test import RequestFactory

    settings.CHANNEL_LAYERS = {}
    settings.STREAM_ACCESS_CHECK_SECONDS = 3600
    laptop = await database_sync_to_async(new_session)(member)
    phone = await database_sync_to_async(new_session)(member)
    on_laptop = await connect(operation.pk, member, session=laptop)
    on_phone = await connect(operation.pk, member, session=phone)
    await live(on_laptop)
    await live(on_phone)

    def log_out_on_the_laptop():
        request = RequestFactory().post("/logout/")
        request.session = SessionStore(laptop.session_key)
        request.user = member
        logout(request)

    await database_sync_to_async(log_out_on_the_laptop)()
    await expect_refusal(on_laptop, 4401, timeout=2)
    await database_sync_to_async(add_events)(operation, 1)
    assert await receive_seqs(on_phone, 1) == [1]
    await on_phone.disconnect()


async def test_expired_session_is_caught_by_the_periodic_check(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    settings.STREAM_ACCESS_CHECK_SECONDS = 0.2
    session = await database_sync_to_async(new_session)(member)
    communicator = await connect(operation.pk, member, session=session)

    def expire():
        from django.contrib.sessions.models import Session

        Session.objects.filter(session_key=session.session_key).update(
            expire_date=timezone.now() - timedelta(seconds=1)
        )

    await database_sync_to_async(expire)()
    await expect_refusal(communicator, 4401, timeout=3)


async def test_a_lost_last_message_is_read_at_the_second_poll_that_sees_it(operation, member, settings, monkeypatch):
    """With a layer, a poll that sees new rows first assumes the batch is in flight (no query);
    the next poll reads what is still missing: nothing is lost, a busy stream costs nothing."""
    settings.CHANNEL_LAYERS = IN_MEMORY_LAYER
    settings.EVENT_SAFETY_POLL_SECONDS = 3600  # this test drives the polls itself
    settings.STREAM_ACCESS_CHECK_SECONDS = 3600
    communicator = await connect(operation.pk, member)
    hub = fanout.hub()
    await eventually(lambda: operation.pk in hub.followers)
    queries = QueryLog(monkeypatch)
    await database_sync_to_async(add_events)(operation, 4)  # stored; its message was lost
    mark = queries.mark()
    await hub.poll()
    assert await communicator.receive_nothing(timeout=0.2)
    assert queries.since(mark, "operations_event") == []
    await hub.poll()
    assert await receive_seqs(communicator, 4) == [1, 2, 3, 4]
    assert len(queries.since(mark, "operations_event")) == 1
    await communicator.disconnect()


async def test_a_watcher_arriving_during_a_poll_is_not_told_its_operation_is_gone(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    settings.EVENT_POLL_SECONDS = 3600
    settings.STREAM_ACCESS_CHECK_SECONDS = 3600
    second = await database_sync_to_async(
        lambda: Operation.objects.create(cluster=operation.cluster, kind="prepare-identity")
    )()
    first_socket = await connect(operation.pk, member)
    hub = fanout.hub()
    await eventually(lambda: operation.pk in hub.followers)
    original = hub.db
    arrived = []

    async def db_then_a_new_watcher(func, *args):
        result = await original(func, *args)
        if func is fanout.operation_states and not arrived:
            # A second operation's first watcher registers while the poll's answer is on its way.
            arrived.append(await connect(second.pk, member))
            await eventually(lambda: second.pk in hub.followers)
        return result

    hub.db = db_then_a_new_watcher
    await hub.poll()
    assert await arrived[0].receive_nothing(timeout=0.3), "not closed as deleted"
    for communicator in (first_socket, arrived[0]):
        await communicator.disconnect()

"""The websocket consumer in-process (Channels' communicator): access, replay, live, gaps."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Group
from django.utils import timezone

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
    op = Operation.objects.create(cluster=cluster, kind="prepare-identity", status=Operation.Status.RUNNING, worker="w:1")
    return op


@pytest.fixture
def member(make_user):
    return make_user("bob", team="blue")


def add_events(operation, count, start=None):
    op = Operation.objects.get(pk=operation.pk)
    writer = EventWriter(op, flush_count=10_000, flush_seconds=60, on_publish=lambda *a: None)
    for index in range(count):
        writer.emit(f"line {index}")
    writer.flush()
    return writer.seq


async def connect(operation_id, user, after=0):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/operations/{operation_id}/?after={after}")
    communicator.scope["user"] = user
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def receive_seqs(communicator, until_seq, timeout=5.0):
    seqs = []
    while not seqs or seqs[-1] < until_seq:
        message = await communicator.receive_json_from(timeout=timeout)
        assert message["type"] == "events"
        seqs.extend(event["seq"] for event in message["events"])
    return seqs


async def test_anonymous_is_refused(operation):
    communicator, connected, code = await connect(operation.pk, AnonymousUser())
    assert not connected and code == 4401


async def test_user_outside_the_team_is_refused(operation, make_user):
    outsider = await database_sync_to_async(make_user)("eve", team="red")
    communicator, connected, code = await connect(operation.pk, outsider)
    assert not connected and code == 4403


async def test_bad_after_is_refused(operation, member):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/operations/{operation.pk}/?after=-3")
    communicator.scope["user"] = member
    connected, code = await communicator.connect(timeout=5)
    assert not connected and code == 4400


async def test_replay_then_reconnect_gets_exactly_the_missed_events(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    await database_sync_to_async(add_events)(operation, 30)
    communicator, connected, _ = await connect(operation.pk, member)
    assert connected
    assert await receive_seqs(communicator, 30) == list(range(1, 31))
    await communicator.disconnect()

    await database_sync_to_async(add_events)(operation, 20)  # written while the client was away
    communicator, connected, _ = await connect(operation.pk, member, after=30)
    assert await receive_seqs(communicator, 50) == list(range(31, 51))
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_embedded_live_feed_reads_the_database(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    communicator, connected, _ = await connect(operation.pk, member)
    assert connected
    assert await communicator.receive_nothing(timeout=0.3)
    await database_sync_to_async(add_events)(operation, 5)
    assert await receive_seqs(communicator, 5) == [1, 2, 3, 4, 5]
    await communicator.disconnect()


async def test_live_layer_with_a_dropped_message_loses_nothing(operation, member, settings):
    settings.CHANNEL_LAYERS = IN_MEMORY_LAYER
    layer = get_channel_layer()
    communicator, connected, _ = await connect(operation.pk, member)
    assert connected
    await database_sync_to_async(add_events)(operation, 3)  # stored, but never published: a "lost" message
    await asyncio.sleep(0)
    # The next published batch starts at seq 4: the consumer sees the gap and reads 1-3 first.
    await database_sync_to_async(add_events)(operation, 2)
    rows = await database_sync_to_async(lambda: [e.as_message() for e in Event.objects.filter(operation=operation, seq__gte=4)])()
    await layer.group_send(operation_group(operation.pk), {"type": "operation.events", "events": rows})
    seqs = await receive_seqs(communicator, 5)
    assert seqs == [1, 2, 3, 4, 5]
    # A duplicate delivery of an old batch is dropped.
    await layer.group_send(operation_group(operation.pk), {"type": "operation.events", "events": rows})
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_origin_from_another_site_is_refused(operation, member):
    from config.asgi import application

    communicator = WebsocketCommunicator(
        application, f"/ws/operations/{operation.pk}/", headers=[(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1")]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


async def test_stale_operation_is_reaped_by_a_watching_client(operation, member, settings):
    settings.CHANNEL_LAYERS = {}
    settings.OPERATION_LEASE_SECONDS = 1
    await database_sync_to_async(
        lambda: Operation.objects.filter(pk=operation.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=5))
    )()
    communicator, connected, _ = await connect(operation.pk, member)
    messages = []
    while not any(e["kind"] == "status" for m in messages for e in m["events"]):
        messages.append(await communicator.receive_json_from(timeout=5))
    status = [e for m in messages for e in m["events"] if e["kind"] == "status"][0]
    assert status["data"]["status"] == "interrupted"
    await communicator.disconnect()

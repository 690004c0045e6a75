"""Open operation streams lose access at once, with real daphne processes: a member removed
from the team in another process (Redis carries the news), a logout in the browser, and a
change the signals never see (caught by the periodic re-check)."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
import websockets

from core.models import TeamMembership
from operations.models import Operation
from tests.conftest import session_cookie, team_of
from tests.factories import make_cluster
from tests.support.web import logged_in_session

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def running_operation(user) -> Operation:
    cluster = make_cluster("watched", team=team_of(user))
    return Operation.objects.create(cluster=cluster, kind="prepare-identity", status=Operation.Status.QUEUED)


async def open_stream(stack, operation_id: int, key: str):
    socket = await websockets.connect(
        f"{stack.ws}/ws/operations/{operation_id}/?after=0",
        additional_headers={"Cookie": f"sessionid={key}"},
        origin=f"http://{stack.address}",
    )
    # The stream is live once the (empty) replay is done; a ping round trip proves it.
    await socket.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong", "last_seq": 0}
    return socket


async def closed_with(socket, timeout: float) -> tuple[int, float]:
    """The close code and how long it took to arrive."""
    started = time.monotonic()
    refusal = None
    try:
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout))
            if message["type"] == "refused":
                refusal = message
    except websockets.ConnectionClosed as exc:
        assert refusal is not None and refusal["code"] == exc.rcvd.code
        return exc.rcvd.code, time.monotonic() - started


async def still_open(socket) -> bool:
    await socket.send(json.dumps({"type": "ping"}))
    return json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "pong"


def test_member_removed_in_another_process_loses_every_stream_at_once(stack_factory, make_user, redis_server, settings):
    # No periodic re-check in the web process: only the news over Redis can close the streams.
    stack = stack_factory(redis_url=redis_server, KUBEBOARD_STREAM_ACCESS_CHECK_SECONDS="3600")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": redis_server, "socket_timeout": None}]},
        }
    }
    leaving = make_user("lena", role="operator")
    staying = make_user("sam", role="viewer")
    operation = running_operation(leaving)
    leaving_key, staying_key = session_cookie(leaving), session_cookie(staying)

    async def scenario():
        streams = [await open_stream(stack, operation.pk, leaving_key) for _ in range(3)]
        other = await open_stream(stack, operation.pk, staying_key)
        from channels.db import database_sync_to_async

        await database_sync_to_async(lambda: TeamMembership.objects.filter(user=leaving).delete())()
        results = [await closed_with(stream, 10) for stream in streams]
        assert await still_open(other)
        await other.close()
        return results

    results = asyncio.run(scenario())
    assert [code for code, _ in results] == [4403, 4403, 4403]
    assert max(seconds for _, seconds in results) < 3, results


def test_logout_closes_the_streams_of_that_browser_only(stack_factory, operator):
    stack = stack_factory(KUBEBOARD_STREAM_ACCESS_CHECK_SECONDS="3600")
    operation = running_operation(operator)
    laptop, phone = session_cookie(operator), session_cookie(operator)

    async def scenario():
        on_laptop = await open_stream(stack, operation.pk, laptop)
        on_phone = await open_stream(stack, operation.pk, phone)

        def log_out():
            session = logged_in_session(stack.http, laptop)
            page = session.get(f"{stack.http}/clusters/", timeout=30)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            response = session.post(
                f"{stack.http}/logout/", data={"csrfmiddlewaretoken": token}, headers={"Referer": stack.http}
            )
            assert response.status_code == 200 and "/login/" in response.url

        await asyncio.to_thread(log_out)
        code, seconds = await closed_with(on_laptop, 10)
        assert await still_open(on_phone)
        await on_phone.close()
        return code, seconds

    code, seconds = asyncio.run(scenario())
    assert code == 4401 and seconds < 3


def test_access_removed_behind_the_signals_back_is_caught_by_the_periodic_check(stack_factory, operator):
    stack = stack_factory(KUBEBOARD_STREAM_ACCESS_CHECK_SECONDS="0.5")
    operation = running_operation(operator)
    key = session_cookie(operator)

    async def scenario():
        stream = await open_stream(stack, operation.pk, key)
        from channels.db import database_sync_to_async
        from django.contrib.auth.models import Group

        def move_to_another_team():
            other = Group.objects.create(name="elsewhere")
            TeamMembership.objects.filter(user=operator).update(team=other)  # no signal is sent

        await database_sync_to_async(move_to_another_team)()
        return await closed_with(stream, 10)

    code, seconds = asyncio.run(scenario())
    assert code == 4403 and seconds < 5

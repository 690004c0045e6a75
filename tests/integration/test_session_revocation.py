"""A new password closes the user's open streams within the re-check interval, with a real
daphne server and the change made the ways people make it: the admin's password form (the
changer's own session stays logged in), ``manage.py reset_password``, ``manage.py
changepassword`` at a terminal, and ``set_password`` through the ORM in another process. Also
the websocket Origin check of the real server: only the site's own scheme, host and port."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest
import websockets

from tests.conftest import session_cookie
from tests.conftest import test_database_env as database_env
from tests.integration.test_stream_access import closed_with, open_stream, running_operation
from tests.support import processes
from tests.support.terminal import run_manage_at_terminal
from tests.support.web import logged_in_session

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHECK_SECONDS = 1.0
# Closing takes at most one re-check interval; this much more covers the poll's own sleep.
SLACK_SECONDS = 1.5
NEW_PASSWORD = "a-new-password-for-olga-7"


def refused_over_http(stack, key: str) -> bool:
    response = logged_in_session(stack.http, key).get(f"{stack.http}/clusters/", timeout=30, allow_redirects=False)
    return response.status_code == 302 and "/login/" in response.headers.get("Location", "")


def change_elsewhere(how: str, stack) -> None:
    env = processes.kubeboard_env(**database_env())
    if how == "reset_password":
        result = subprocess.run(
            [sys.executable, "manage.py", "reset_password", "olga"],
            cwd=processes.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    elif how == "changepassword":
        shown = run_manage_at_terminal(
            ["changepassword", "olga"], env, [("Password:", NEW_PASSWORD), ("Password (again):", NEW_PASSWORD)]
        )
        assert "changed successfully" in shown, shown
    else:
        processes.run_django(
            env,
            "from django.contrib.auth.models import User\n"
            "user = User.objects.get(username='olga')\n"
            f"user.set_password({NEW_PASSWORD!r})\n"
            "user.save()\n",
        )


@pytest.mark.parametrize("how", ["reset_password", "changepassword", "orm-in-another-process"])
def test_password_changed_in_another_process_closes_the_users_streams(stack_factory, make_user, how):
    stack = stack_factory(KUBEBOARD_STREAM_ACCESS_CHECK_SECONDS=str(CHECK_SECONDS))
    olga = make_user("olga", role="operator")
    operation = running_operation(olga)
    stream_key, browsing_key = session_cookie(olga), session_cookie(olga)
    assert not refused_over_http(stack, browsing_key)

    async def scenario():
        stream = await open_stream(stack, operation.pk, stream_key)
        await asyncio.to_thread(change_elsewhere, how, stack)
        return await closed_with(stream, 10)

    code, seconds = asyncio.run(scenario())
    assert code == 4401 and seconds < CHECK_SECONDS + SLACK_SECONDS, (code, seconds, stack.logs()[-3000:])
    assert refused_over_http(stack, browsing_key)


def test_own_password_change_in_the_admin_closes_the_other_sessions_streams_and_keeps_this_one(
    stack_factory, make_user
):
    stack = stack_factory(KUBEBOARD_STREAM_ACCESS_CHECK_SECONDS=str(CHECK_SECONDS))
    root = make_user("root", superuser=True, role="admin")
    operation = running_operation(root)
    here, phone = session_cookie(root), session_cookie(root)

    def change_own_password():
        browser = logged_in_session(stack.http, here)
        url = f"{stack.http}/admin/auth/user/{root.pk}/password/"
        form = browser.get(url, timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        response = browser.post(
            url,
            data={
                "csrfmiddlewaretoken": token,
                "password1": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
                "usable_password": "true",
            },
            headers={"Referer": url},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, response.text[:2000]
        return response.cookies.get("sessionid")

    async def scenario():
        on_phone = await open_stream(stack, operation.pk, phone)
        renewed = await asyncio.to_thread(change_own_password)
        code, seconds = await closed_with(on_phone, 10)  # counted from the change's answer
        return code, seconds, renewed

    code, seconds, renewed = asyncio.run(scenario())
    # The admin ran in the web process itself: its streams are told at once.
    assert code == 4401 and seconds < CHECK_SECONDS + SLACK_SECONDS, (code, seconds)
    assert refused_over_http(stack, phone)
    # This browser stays logged in, under the new session key Django gave it.
    assert renewed and not refused_over_http(stack, renewed)


@pytest.mark.parametrize("change", ["role", "deactivation"])
def test_a_role_change_or_deactivation_in_the_web_process_closes_the_members_streams_at_once(
    stack_factory, make_user, change
):
    stack = stack_factory(KUBEBOARD_STREAM_ACCESS_CHECK_SECONDS="3600")  # only the change itself may close them
    olga = make_user("olga", role="operator")
    boss = make_user("boss", role="admin", superuser=change == "deactivation")
    operation = running_operation(olga)
    stream_key, browsing_key, boss_key = session_cookie(olga), session_cookie(olga), session_cookie(boss)
    membership = olga.team_memberships.get()

    def make_the_change():
        browser = logged_in_session(stack.http, boss_key)
        if change == "role":
            page = f"{stack.http}/teams/{membership.team_id}/"
            url = f"{stack.http}/teams/{membership.team_id}/members/{membership.pk}/role/"
            data = {"role": "viewer"}
        else:
            page = url = f"{stack.http}/admin/auth/user/{olga.pk}/change/"
            data = {"username": "olga", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
        form = browser.get(page, timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        response = browser.post(
            url, data={"csrfmiddlewaretoken": token, **data}, headers={"Referer": page}, allow_redirects=False
        )
        assert response.status_code == 302, response.text[:3000]

    async def scenario():
        stream = await open_stream(stack, operation.pk, stream_key)
        await asyncio.to_thread(make_the_change)
        return await closed_with(stream, 10)  # counted from the change's answer

    code, seconds = asyncio.run(scenario())
    assert code == 4401 and seconds < CHECK_SECONDS + SLACK_SECONDS, (code, seconds)
    assert refused_over_http(stack, browsing_key)
    assert not refused_over_http(stack, boss_key)


def test_the_real_server_accepts_websockets_from_its_own_origin_only(stack_factory, operator):
    stack = stack_factory()
    operation = running_operation(operator)
    key = session_cookie(operator)
    port = int(stack.address.rsplit(":", 1)[1])

    async def handshake(origin: str) -> int:
        try:
            async with websockets.connect(
                f"{stack.ws}/ws/operations/{operation.pk}/?after=0",
                additional_headers={"Cookie": f"sessionid={key}"},
                origin=origin,
            ):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    async def scenario():
        return {
            origin: await handshake(origin)
            for origin in (
                f"http://{stack.address}",
                f"http://127.0.0.1:{port + 1}",
                f"https://{stack.address}",
                f"http://localhost:{port}",
            )
        }

    assert asyncio.run(scenario()) == {
        f"http://{stack.address}": 101,
        f"http://127.0.0.1:{port + 1}": 403,
        f"https://{stack.address}": 403,
        f"http://localhost:{port}": 403,
    }


def test_the_real_servers_log_has_one_line_per_refusal_and_no_traceback(stack_factory, make_user):
    stack = stack_factory()
    viewer = make_user("vera", role="viewer")
    operation = running_operation(viewer)  # its cluster is in vera's team
    browser = logged_in_session(stack.http, session_cookie(viewer))
    page = browser.get(f"{stack.http}/clusters/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    url = f"{stack.http}/clusters/{operation.cluster.name}/initialize/"
    for _ in range(3):
        response = browser.post(url, data={"csrfmiddlewaretoken": token}, headers={"Referer": url}, timeout=30)
        assert response.status_code == 403
    log = processes.wait_until(
        lambda: stack.web.log() if stack.web.log().count("forbidden: user=vera") >= 3 else "",
        timeout=10,
        message="three refusals in the web log",
    )
    lines = [line for line in log.splitlines() if "forbidden" in line.lower()]
    assert len(lines) == 3, lines
    assert all(f"path=/clusters/{operation.cluster.name}/initialize/ reason=your role in team" in x for x in lines)
    assert "Traceback" not in log

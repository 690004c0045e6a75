"""A user's view of a running Kubeboard: HTTP with a real session, and a real websocket client."""

from __future__ import annotations

import asyncio
import json
import re

import requests
import websockets


def log_in(page, base: str, username: str, password: str) -> None:
    """Log in through the login page in a browser (Playwright page)."""
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")


def logged_in_session(base_url: str, session_key: str) -> requests.Session:
    session = requests.Session()
    session.cookies.set("sessionid", session_key, domain=base_url.split("//")[1].split(":")[0])
    return session


def post_form(session: requests.Session, url: str, data: dict) -> requests.Response:
    page = session.get(url, timeout=30)
    page.raise_for_status()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(url, data={**data, "csrfmiddlewaretoken": token}, headers={"Referer": url}, timeout=60)


async def collect_events(
    ws_base: str, operation_id: int, session_key: str, *, after: int = 0, until=None, timeout: float = 120.0
) -> list[dict]:
    """Receive events until ``until(events)`` is true (default: the operation finished)."""
    until = until or (
        lambda events: any(
            e["kind"] == "status" and e["data"]["status"] in {"succeeded", "failed", "interrupted"} for e in events
        )
    )
    host = ws_base.split("//")[1]
    events: list[dict] = []
    async with websockets.connect(
        f"{ws_base}/ws/operations/{operation_id}/?after={after}",
        additional_headers={"Cookie": f"sessionid={session_key}"},
        origin=f"http://{host}",
    ) as socket:

        async def run() -> None:
            while not until(events):
                message = json.loads(await socket.recv())
                if message["type"] == "events":
                    events.extend(message["events"])

        await asyncio.wait_for(run(), timeout)
    return events


def collect(ws_base: str, operation_id: int, session_key: str, **kwargs) -> list[dict]:
    return asyncio.run(collect_events(ws_base, operation_id, session_key, **kwargs))

"""Every route × every kind of user, from the declarative matrix in tests/permission_matrix.py.

Fails when a route has no entry (the message says what to add), when a declared route no
longer exists, or when a user gets another status than declared.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests import permission_matrix as pm

pytestmark = pytest.mark.django_db


def walk(patterns=None, prefix: str = "", namespace: str | None = None):
    """(name or pattern string, pattern string) for every URL pattern, recursively."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace
            if pattern.namespace:
                inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            route = prefix + str(pattern.pattern)
            if pattern.name:
                yield (f"{namespace}:{pattern.name}" if namespace else pattern.name), route
            else:
                yield route, route


ROUTES = dict(walk())
SITE_ROUTES = {key: route for key, route in ROUTES.items() if not route.startswith("admin/")}
ADMIN_ROUTES = {key: route for key, route in ROUTES.items() if route.startswith("admin/")}


def url_for(key: str, route: pm.Route, world) -> str:
    """The URL of a named route (reversed), or of an unnamed one (its pattern is its key)."""
    if ROUTES.get(key) == key:
        return "/" + key
    return reverse(key, kwargs=route.kwargs(world))


def _status(response) -> object:
    if response.status_code in (301, 302):
        location = response.get("Location", "")
        return pm.LOGIN if "/login/" in location else pm.REDIRECT
    return response.status_code


def observe(world, key: str, route: pm.Route, method: str) -> list[object]:
    """The status each user gets; every request in a savepoint rolled back (no request sees another's effects)."""
    found = []
    for role in pm.ROLES:
        with transaction.atomic():
            client = Client()
            user = world.users[role]
            if user is not None:
                client.force_login(user)
            url = url_for(key, route, world)
            data = route.data(world) if method == "POST" else None
            response = (
                getattr(client, method.lower())(url, data) if data is not None else getattr(client, method.lower())(url)
            )
            found.append(_status(response))
            transaction.set_rollback(True)
    return found


def test_every_route_has_an_entry_and_every_entry_a_route():
    missing = sorted(set(SITE_ROUTES) - set(pm.MATRIX))
    gone = sorted(set(pm.MATRIX) - set(SITE_ROUTES))
    message = []
    for key in missing:
        message.append(
            f"route {key!r} ({SITE_ROUTES[key]}) has no entry in tests/permission_matrix.py MATRIX. Add one, e.g.\n"
            f'    "{key}": Route(kwargs=lambda w: {{...}}, GET=S(anonymous, other_team, viewer, operator, admin, superuser), '
            f"POST=S(...)),\n  then run this test: a wrong status is reported with what the route returned."
        )
    for key in gone:
        message.append(f"MATRIX entry {key!r} names no route any more: remove it from tests/permission_matrix.py")
    assert not message, "\n".join(message)


CASES = [(key, method) for key, route in sorted(pm.MATRIX.items()) for method in sorted(route.expectations())]


@pytest.mark.parametrize(("key", "method"), CASES, ids=[f"{k or '/'} {m}" for k, m in CASES])
def test_route_answers_each_user_as_declared(key, method):
    if key not in SITE_ROUTES:
        pytest.fail(f"{key!r} is not a route (see test_every_route_has_an_entry_and_every_entry_a_route)")
    world = pm.build_world()
    route = pm.MATRIX[key]
    expected = list(route.expectations()[method])
    found = observe(world, key, route, method)
    assert all(pm.matches(e, f) for e, f in zip(expected, found, strict=True)), (
        f"{method} {key}: expected {dict(zip(pm.ROLES, expected, strict=True))}\n  but got {dict(zip(pm.ROLES, found, strict=True))}\n"
        f"  If the route changed on purpose, update tests/permission_matrix.py: {method}=S{tuple(found)!r}"
    )


def _admin_kwargs(route: str) -> dict:
    kwargs = {}
    for name in ("object_id", "app_label", "content_type_id", "id", "url"):
        if f"<{name}>" in route or f":{name}>" in route or f"(?P<{name}>" in route:
            kwargs[name] = {"app_label": "clusters", "content_type_id": "1", "url": "nowhere/"}.get(name, "1")
    return kwargs


def test_every_admin_route_sends_anonymous_to_the_admin_login_and_never_fails_for_the_superuser():
    world = pm.build_world()
    anonymous, root = Client(), Client()
    root.force_login(world.users["superuser"])
    problems = []
    for key, route in sorted(ADMIN_ROUTES.items()):
        if key == route:  # unnamed: the object redirects and the catch-all
            url = "/" + re.sub(r"<(?:\w+:)?\w+>", "1", route).replace("(?P<url>.*)$", "nowhere/")
        else:
            url = reverse(key, kwargs=_admin_kwargs(route))
        if key not in pm.ADMIN_PUBLIC:
            response = anonymous.get(url)
            if response.status_code != 302 or "/admin/login/" not in response["Location"]:
                problems.append(f"{key} ({url}): anonymous got {response.status_code}")
        status = root.get(url).status_code
        if status >= 500:
            problems.append(f"{key} ({url}): superuser got {status}")
    assert not problems, "\n".join(problems)


# --- websockets -------------------------------------------------------------------------------


def _socket_routes() -> dict[str, object]:
    from operations.routing import websocket_urlpatterns

    return {str(pattern.pattern): pattern for pattern in websocket_urlpatterns}


def test_every_websocket_route_has_an_entry():
    missing = sorted(set(_socket_routes()) - set(pm.SOCKETS))
    assert not missing, (
        f"websocket routes {missing} have no entry in tests/permission_matrix.py SOCKETS; add "
        "Socket(path=lambda w: ..., codes=S(4401, 4403, OPEN, OPEN, OPEN, OPEN)) with the close code per user"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pattern", sorted(pm.SOCKETS))
def test_websocket_route_answers_each_user_as_declared(pattern):
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth.models import AnonymousUser

    from operations.routing import websocket_urlpatterns

    world = pm.build_world()
    entry = pm.SOCKETS[pattern]

    async def code_for(user) -> object:
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), entry.path(world))
        communicator.scope["user"] = user or AnonymousUser()
        connected, code = await communicator.connect(timeout=5)
        if not connected:
            return code
        while not await communicator.receive_nothing(timeout=0.5):
            message = await communicator.receive_output(timeout=1)
            if message["type"] == "websocket.close":
                return message.get("code")
        await communicator.disconnect()
        return pm.OPEN

    async def run() -> list[object]:
        return [await code_for(world.users[role]) for role in pm.ROLES]

    found = asyncio.run(run())
    assert found == list(entry.codes), (
        f"websocket {pattern}: expected {dict(zip(pm.ROLES, entry.codes, strict=True))}\n  but got {dict(zip(pm.ROLES, found, strict=True))}"
    )

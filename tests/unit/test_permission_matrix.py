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


# --- every admin URL × every kind of user -----------------------------------------------------

ADMIN_VIEW_OF_SUFFIX = {
    "": "changelist",
    "add/": "add",
    "<path:object_id>/change/": "change",
    "<path:object_id>/history/": "history",
    "<path:object_id>/delete/": "delete",
    "<id>/password/": "password",
    "<path:object_id>/": "object",
}


def _admin_status(response) -> object:
    if response.status_code in (301, 302):
        location = response.get("Location", "")
        if "/admin/login/" in location:
            return pm.ADMIN_LOGIN
        return pm.ADMIN_INDEX if location == "/admin/" else pm.REDIRECT
    return response.status_code


def _admin_model_urls(world, key: str, route: str) -> list[tuple[str, tuple]] | None:
    """The URL and expected statuses of a model's admin screen; None if ``route`` is not one."""
    from django.apps import apps

    from core.permissions import VIEW, is_team_scoped, restrict

    found = re.fullmatch(r"admin/(\w+)/(\w+)/(.*)", route)
    if found is None or found.group(3) not in ADMIN_VIEW_OF_SUFFIX:
        return None
    try:
        model = apps.get_model(found.group(1), found.group(2))
    except LookupError:
        return None
    view = ADMIN_VIEW_OF_SUFFIX[found.group(3)]
    label = model._meta.label_lower
    rules = pm.ADMIN_MODEL_RULES.get(label) or (pm.TEAM_ADMIN if is_team_scoped(model) else pm.SUPERUSER_ADMIN)
    if view not in rules:
        return None
    expected = rules[view]
    if label in pm.ADMIN_ROWS:
        row = pm.ADMIN_ROWS[label](world)
    elif is_team_scoped(model):
        row = restrict(model._default_manager.all(), world.users["viewer"], VIEW).first()
    else:
        row = model._default_manager.order_by("pk").first()
    if row is None and "<" in found.group(3):
        row_id, expected = "0", (pm.ADMIN_NO_ROW if view != "object" else expected)
    else:
        row_id = str(row.pk) if row is not None else "0"
    path = re.sub(r"<(?:\w+:)?\w+>", row_id, route)
    return [("/" + path, expected)]


def test_every_admin_url_answers_each_user_as_declared():
    from django.contrib.auth.models import User

    world = pm.build_world()
    staff = [world.users[role].pk for role in ("other_team", "viewer", "operator", "admin")]
    User.objects.filter(pk__in=staff).update(is_staff=True)
    clients = {}
    for role in pm.ROLES:
        clients[role] = Client()
        if world.users[role] is not None:
            clients[role].force_login(User.objects.get(pk=world.users[role].pk))
    problems, walked = [], 0
    for key, route in sorted(ADMIN_ROUTES.items()):
        if key in pm.ADMIN_PAGES:
            urls = [(page.url(world), page.GET) for page in pm.ADMIN_PAGES[key]]
        else:
            urls = _admin_model_urls(world, key, route)
        if urls is None:
            problems.append(
                f"admin route {key!r} ({route}) is not declared: add it to ADMIN_PAGES in tests/permission_matrix.py"
            )
            continue
        for url, expected in urls:
            found = [_admin_status(clients[role].get(url)) for role in pm.ROLES]
            walked += 1
            if not all(pm.matches(e, f) for e, f in zip(expected, found, strict=True)):
                problems.append(
                    f"GET {url} ({key}): expected {dict(zip(pm.ROLES, expected, strict=True))}\n"
                    f"    but got {dict(zip(pm.ROLES, found, strict=True))}"
                )
    assert not problems, "\n".join(problems)
    assert walked >= len(ADMIN_ROUTES)


def test_view_on_site_sends_a_member_to_the_objects_page_and_tells_another_team_nothing():
    from django.contrib.auth.models import User

    world = pm.build_world()
    User.objects.filter(pk__in=[world.users["other_team"].pk, world.users["viewer"].pk]).update(is_staff=True)
    url = pm.ADMIN_PAGES["admin:view_on_site"][0].url(world)
    member, stranger = Client(), Client()
    member.force_login(User.objects.get(pk=world.users["viewer"].pk))
    stranger.force_login(User.objects.get(pk=world.users["other_team"].pk))
    assert member.get(url)["Location"].endswith(f"/clusters/{world.cluster.name}/")
    refused = stranger.get(url)
    assert refused.status_code == 404 and world.cluster.name not in refused.content.decode()

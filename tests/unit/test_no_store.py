"""Every response that carries a secret or a backup says ``Cache-Control: no-store``: the downloads
(admin kubeconfig, etcd snapshot), the pages that show a token, a join command or a certificate
key, and the forms a secret is posted to, including when they answer with a mistake.

The list below is written out on purpose, apart from core.no_store.NO_STORE_ROUTES: a route that
leaves that list, or a new secret route missing from it, fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from core.no_store import NO_STORE_ROUTES
from kubeadm import pki
from remote import keys
from tests import permission_matrix as pm
from tests.support.kubeclusters import store_authorities
from tests.unit.test_permission_matrix import ROUTES

pytestmark = pytest.mark.django_db

KEY = keys.generate_key_pair("no-store").private_key
BAD_MACHINE = {"name": "cp9", "address": "10.0.0.300", "ssh_port": "22", "ssh_user": "root", "role": "worker"}


def _cluster(w) -> dict:
    return {"name": w.cluster.name}


def _kubeconfig_text(w) -> str:
    return "apiVersion: v1\nkind: Config\nusers:\n- name: a\n  user:\n    token: abc.def\n"


# (route, who, method, kwargs, data, status)
SECRET_RESPONSES: list[tuple[str, str | None, str, Any, Any, int]] = [
    # downloads of a credential or a backup
    ("clusters:admin-kubeconfig", "admin", "POST", _cluster, lambda w: {"ttl": "1h"}, 200),
    ("daytwo:snapshot-download", "admin", "POST", lambda w: {"name": w.cluster.name, "pk": w.snapshot.pk}, None, 200),
    # pages that show a secret
    ("tokens:create", "operator", "GET", _cluster, None, 200),
    ("tokens:create", "operator", "POST", _cluster, lambda w: {"token": "qwe123.zx8vb7nm6lk5jh4g", "ttl": "x"}, 400),
    ("tokens:rotate", "operator", "POST", lambda w: {"name": w.cluster.name, "token_id": w.token.token_id}, None, 302),
    ("tokens:created", "operator", "GET", lambda w: {"name": w.cluster.name, "token_id": w.token.token_id}, None, 200),
    ("tokens:reveal", "admin", "POST", lambda w: {"name": w.cluster.name, "token_id": w.token.token_id}, None, 200),
    (
        "tokens:join_command",
        "admin",
        "POST",
        lambda w: {"name": w.cluster.name, "token_id": w.token.token_id},
        lambda w: {"role": "worker"},
        200,
    ),
    (
        "tokens:certificate_key_reveal",
        "admin",
        "POST",
        lambda w: {"name": w.cluster.name, "pk": w.certificate_key.pk},
        None,
        200,
    ),
    # a new account's one-time password: the create, and the one page that shows it
    ("teams:user_create", "superuser", "POST", lambda w: {}, lambda w: {"username": "fresh", "role": "viewer"}, 302),
    ("teams:user_create", "superuser", "GET", lambda w: {}, None, 302),
    # forms a secret is posted to: the empty form, and the form answering a mistake
    ("nodes:add", "operator", "GET", lambda w: {"cluster": w.cluster.name}, None, 200),
    (
        "nodes:add",
        "operator",
        "POST",
        lambda w: {"cluster": w.cluster.name},
        lambda w: {**BAD_MACHINE, "credential": "private-key", "private_key": KEY},
        400,
    ),
    (
        "nodes:edit",
        "operator",
        "POST",
        lambda w: {"cluster": w.cluster.name, "node": w.node.name},
        lambda w: {**BAD_MACHINE, "credential": "password", "password": "pw-secret-9"},
        400,
    ),
    ("adopt-cluster", "admin", "GET", None, None, 200),
    (
        "adopt-cluster",
        "admin",
        "POST",
        None,
        lambda w: {"name": "Bad_Name", "team": w.team.pk, "kubeconfig_text": _kubeconfig_text(w)},
        400,
    ),
    ("import-cluster", "operator", "GET", None, None, 200),
    ("import-cluster", "operator", "POST", None, lambda w: {"name": "x", "text": "bootstrapTokens: []"}, 400),
    ("login", None, "GET", None, None, 200),
    ("login", None, "POST", None, lambda w: {"username": "blue-admin", "password": "not-the-password"}, 200),
    ("password-change", "viewer", "GET", None, None, 200),
    (
        "password-change",
        "viewer",
        "POST",
        None,
        lambda w: {"old_password": "not-the-password", "new_password1": "a", "new_password2": "b"},
        400,
    ),
    # Django's own password forms (its admin is never cached)
    (
        "admin:auth_user_add",
        "superuser",
        "POST",
        None,
        lambda w: {"username": "n", "password1": "a", "password2": "b"},
        200,
    ),
    (
        "admin:auth_user_password_change",
        "superuser",
        "POST",
        lambda w: {"id": w.users["viewer"].pk},
        lambda w: {"password1": "a", "password2": "b"},
        200,
    ),
]


@pytest.fixture
def world():
    world = pm.build_world()
    # A real cluster CA, so the admin kubeconfig is issued (the matrix's world has a stand-in).
    store_authorities(world.cluster, {"ca": pki.generate_ca("kubernetes", "ECDSA-P256")})
    return world


@pytest.mark.parametrize(
    ("route", "who", "method", "kwargs", "data", "status"),
    SECRET_RESPONSES,
    ids=[f"{route}-{method}-{status}" for route, _, method, _, _, status in SECRET_RESPONSES],
)
def test_secret_responses_are_never_stored(world, route, who, method, kwargs, data, status):
    client = Client()
    if who is not None:
        client.force_login(world.users[who])
    url = reverse(route, kwargs=kwargs(world) if kwargs else None)
    response = client.post(url, data(world) if data else {}) if method == "POST" else client.get(url)
    assert response.status_code == status, getattr(response, "content", b"")[:500]
    assert "no-store" in response.get("Cache-Control", ""), (route, response.get("Cache-Control"))
    if response.streaming:
        b"".join(response.streaming_content)


def test_the_list_is_the_one_the_middleware_applies():
    tested = {route for route, *_ in SECRET_RESPONSES if not route.startswith("admin:")}
    assert tested == set(NO_STORE_ROUTES)
    for route in NO_STORE_ROUTES:  # each name still resolves to a route
        assert route in ROUTES, route


@pytest.mark.django_db(transaction=True)
def test_the_snapshot_download_is_never_stored_under_daphne_too():
    """Under ASGI the snapshot streams asynchronously; the header is set all the same."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    world = pm.build_world()
    client = AsyncClient()
    async_to_sync(client.aforce_login)(world.users["admin"])
    url = reverse("daytwo:snapshot-download", kwargs={"name": world.cluster.name, "pk": world.snapshot.pk})

    async def download():
        response = await client.post(url)
        return response, b"".join([piece async for piece in response.streaming_content])

    response, body = async_to_sync(download)()
    assert response.status_code == 200 and body == b"not really an etcd database"
    assert response["Cache-Control"] == "no-store"

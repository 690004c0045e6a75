"""Inputs that PostgreSQL refuses never reach it: a NUL character anywhere in the address, the
query or a form field is a 400 that says so, and an overlong user name at the login is a form
error. Marked ``postgres`` so CI's PostgreSQL pass runs them too (there they were 500s)."""

from __future__ import annotations

import pytest
from django.test import Client

from clusters.models import Cluster
from tests.conftest import team_of
from tests.factories import make_cluster

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.mark.parametrize(
    ("method", "url", "data", "where"),
    [
        ("get", "/clusters/%00/", None, "the address"),
        ("get", "/clusters/c1/nodes/%00/edit/", None, "the address"),
        ("get", "/audit/?actor=a%00b", None, "the query string"),
        ("post", "/clusters/c1/tokens/abcdef/delete/", {"reason": "gone\x00"}, "the form field 'reason'"),
        ("post", "/login/", {"username": "a\x00", "password": "x"}, "the form field 'username'"),
    ],
)
def test_a_nul_character_is_refused_before_any_lookup(operator, method, url, data, where):
    make_cluster("c1", team=team_of(operator))
    client = Client()
    client.force_login(operator)
    response = getattr(client, method)(url, data) if data is not None else getattr(client, method)(url)
    assert response.status_code == 400
    assert (
        response.content.decode()
        == f"Refused: {where} contains a NUL character (\\0), which no Kubeboard page accepts.\n"
    )
    assert Cluster.objects.count() == 1


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_an_overlong_user_name_at_the_login_is_a_form_error(url):
    response = Client().post(url, {"username": "u" * 20_000, "password": "x"})
    assert response.status_code == 200
    assert response.context["form"].errors["username"] == [
        "Ensure this value has at most 150 characters (it has 20000)."
    ]

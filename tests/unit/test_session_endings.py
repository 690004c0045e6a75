"""What ends a user's other sessions: a new password (the admin's form, ``reset_password``,
``changepassword`` at a terminal, ``set_password`` in another process), a deactivation and a
changed role. The session that changed its own password stays logged in; a login or an
unrelated edit ends nothing. Open streams: tests/integration/test_session_revocation.py."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client

from core.models import TeamMembership
from operations import fanout
from operations.models import Operation
from tests.conftest import session_cookie, team_of
from tests.conftest import test_database_env as database_env
from tests.factories import make_cluster
from tests.support import processes
from tests.support.terminal import run_manage_at_terminal

# Sessions end after the change commits: the tests commit for real.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a-new-password-for-olga-7"


def client_for(key: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = key
    return client


def logged_in(key: str) -> bool:
    """Whether this session still opens a page (a refused one is sent to the login page)."""
    response = client_for(key).get("/clusters/")
    return response.status_code == 200


def live(keys: list[str]) -> set[str]:
    return set(Session.objects.filter(session_key__in=keys).values_list("session_key", flat=True))


@pytest.fixture
def olga(make_user):
    return make_user("olga", role="operator")


@pytest.fixture
def root(make_user):
    return make_user("root", superuser=True, team=None)


def admin_password_form(client: Client, user: User, password: str):
    return client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": password, "password2": password, "usable_password": "true"},
    )


def test_admin_password_change_ends_every_session_of_that_user(olga, root):
    laptop, phone = session_cookie(olga), session_cookie(olga)
    assert logged_in(laptop) and logged_in(phone)
    admin = client_for(session_cookie(root))
    response = admin_password_form(admin, olga, NEW_PASSWORD)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert live([laptop, phone]) == set()
    assert not logged_in(laptop) and not logged_in(phone)
    assert admin.get("/admin/").status_code == 200  # the changer's own session is untouched


def test_own_password_change_in_the_admin_keeps_this_session_and_ends_the_others(root):
    here, elsewhere = session_cookie(root), session_cookie(root)
    client = client_for(here)
    response = admin_password_form(client, root, NEW_PASSWORD)
    assert response.status_code == 302, response.content.decode()[:2000]
    # Django gives the changing session a new key (update_session_auth_hash); it stays logged in.
    assert client.get("/clusters/").status_code == 200
    assert client.get("/admin/").status_code == 200
    assert not logged_in(elsewhere)
    assert live([elsewhere]) == set()


def test_reset_password_command_ends_the_users_sessions(olga):
    keys = [session_cookie(olga), session_cookie(olga)]
    call_command("reset_password", "olga", stdout=open("/dev/null", "w"))
    assert live(keys) == set()
    assert not any(logged_in(key) for key in keys)


def test_changepassword_at_a_terminal_ends_the_users_sessions(olga):
    keys = [session_cookie(olga), session_cookie(olga)]
    env = processes.kubeboard_env(**database_env())
    shown = run_manage_at_terminal(
        ["changepassword", "olga"], env, [("Password:", NEW_PASSWORD), ("Password (again):", NEW_PASSWORD)]
    )
    assert "changed successfully" in shown, shown
    assert User.objects.get(pk=olga.pk).check_password(NEW_PASSWORD)
    assert live(keys) == set()
    assert not any(logged_in(key) for key in keys)


def test_set_password_through_the_orm_in_another_process_ends_the_users_sessions(olga):
    keys = [session_cookie(olga), session_cookie(olga)]
    env = processes.kubeboard_env(**database_env())
    processes.run_django(
        env,
        "from django.contrib.auth.models import User\n"
        "user = User.objects.get(username='olga')\n"
        f"user.set_password({NEW_PASSWORD!r})\n"
        "user.save()\n",
    )
    assert live(keys) == set()
    assert not any(logged_in(key) for key in keys)


def test_deactivation_ends_the_users_sessions(olga):
    keys = [session_cookie(olga), session_cookie(olga)]
    olga.is_active = False
    olga.save()
    assert live(keys) == set()


def test_role_change_on_the_teams_page_ends_the_members_sessions_not_the_admins(olga, make_user):
    boss = make_user("boss", role="admin")
    keys = [session_cookie(olga), session_cookie(olga)]
    boss_key = session_cookie(boss)
    team = team_of(olga)
    membership = TeamMembership.objects.get(user=olga, team=team)
    client = client_for(boss_key)
    page = client.get(f"/teams/{team.pk}/")
    assert page.status_code == 200
    response = client.post(f"/teams/{team.pk}/members/{membership.pk}/role/", {"role": "viewer"})
    assert response.status_code == 302
    assert TeamMembership.objects.get(pk=membership.pk).role == "viewer"
    assert live(keys) == set()
    assert logged_in(boss_key)


def test_a_login_or_an_unrelated_edit_ends_nothing(olga):
    first = session_cookie(olga)
    login = Client()
    assert login.post("/login/", {"username": "olga", "password": "pw-olga"}).status_code == 302
    olga.refresh_from_db()
    olga.first_name = "Olga"
    olga.save()
    TeamMembership.objects.get(user=olga).save()  # saved, same role
    assert live([first]) == {first}
    assert logged_in(first) and login.get("/clusters/").status_code == 200


def test_password_changed_behind_the_signals_back_ends_the_stream_at_the_next_check(olga):
    key = session_cookie(olga)
    operation = Operation.objects.create(
        cluster=make_cluster("watched", team=team_of(olga)), kind="prepare-identity", status=Operation.Status.QUEUED
    )
    entry = (olga.pk, key, operation.pk)
    assert fanout.access_verdicts([entry]) == {entry: None}
    other = User(username="x")
    other.set_password(NEW_PASSWORD)
    table = connection.ops.quote_name(User._meta.db_table)
    with connection.cursor() as cursor:  # no model signal sees this
        cursor.execute(f"UPDATE {table} SET password = %s WHERE id = %s", [other.password, olga.pk])
    assert live([key]) == {key}
    assert fanout.access_verdicts([entry]) == {entry: fanout.CLOSE_UNAUTHENTICATED}

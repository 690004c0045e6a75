"""Fixtures shared by every test: users, real services, and Kubeboard's own processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import cost, processes
from tests.support.services import ServiceUnavailable, start_redis


def _quick_password_hashing() -> None:
    """Hash the test process's passwords with tests.support.hashers' PBKDF2 (Django's settings
    object is configured by now: pytest-django loads before this file)."""
    from django.conf import settings
    from django.contrib.auth import hashers

    settings.PASSWORD_HASHERS = ["tests.support.hashers.QuickPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()


_quick_password_hashing()


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark tests by cost from the fixtures they use (tests/support/cost.py): a new test that
    takes the Redis or the test-bed cluster fixture is selected by ``-m`` like the others.
    Marked as each test is collected, so before pytest's ``-m`` deselection: marked later, in
    the ordering hook below, ``-m "not cluster"`` still selected the token test bed's users."""
    used = set(getattr(item, "fixturenames", ()))
    if used & cost.SERVICE_FIXTURES:
        item.add_marker(pytest.mark.services)
    if used & cost.CLUSTER_FIXTURES:
        item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests sharing the token test bed run back to back (each module's order kept), so it is
    booted once and closed right after them; trylast: after pytest-django's ordering, which the
    block keeps."""
    for item in items:
        if item.get_closest_marker("browser") and "tests/e2e/" not in item.nodeid:
            # bin/test's browser pass collects tests/e2e only: elsewhere this test would never run.
            raise pytest.UsageError(f"{item.nodeid} is marked browser: browser tests belong in tests/e2e/")
    users = [item for item in items if "token_testbeds" in getattr(item, "fixturenames", ())]
    if users:
        rest = [item for item in items if "token_testbeds" not in getattr(item, "fixturenames", ())]
        # pytest-django runs every database test without transaction=True before any that flushes
        # the tables (and with them the rows data migrations made): the block goes right after the
        # last of those, its own flushing tests last.
        plain = [index for index, item in enumerate(rest) if _uses_db(item) and not _transactional(item)]
        at = plain[-1] + 1 if plain else 0
        block = sorted(users, key=lambda item: (_transactional(item), item.nodeid.split("::")[0]))
        items[:] = rest[:at] + block + rest[at:]


def _transactional(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    flagged = marker is not None and bool(
        marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences") or (marker.args and marker.args[0])
    )
    names = getattr(item, "fixturenames", ())
    return flagged or "transactional_db" in names or "live_server" in names


def _uses_db(item: pytest.Item) -> bool:
    return item.get_closest_marker("django_db") is not None or "db" in getattr(item, "fixturenames", ())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    # Module-scoped fixtures start before any function-scoped one: the item is known from here on.
    cost.set_current(item)
    try:
        return (yield)
    finally:
        cost.set_current(None)


# Token tests of several modules share one test-bed control plane (tests/support/kubeclusters.py).
TOKEN_TESTBED = ("kbtbt0", "10.213.20.0/24", 3)
_token_testbeds = None


@pytest.fixture(scope="session")
def token_testbeds():
    """The shared token test bed; a module's ``testbed`` fixture takes it with ``.get()``."""
    global _token_testbeds
    from tests.support.kubeclusters import SharedTokenTestbed

    _token_testbeds = SharedTokenTestbed(*TOKEN_TESTBED)
    yield _token_testbeds
    _token_testbeds.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    result = yield
    last_user = "token_testbeds" in getattr(item, "fixturenames", ()) and (
        nextitem is None or "token_testbeds" not in getattr(nextitem, "fixturenames", ())
    )
    if last_user and _token_testbeds is not None:
        _token_testbeds.close()
    return result


def _guard_sandbox_boots() -> None:
    """Every test-bed boot goes through Sandbox.up (sandbox(), blank_machines(), machines()):
    a test that boots one must be marked ``cluster``."""
    from tools.testbed.sandbox import Sandbox

    up = Sandbox.up

    def guarded_up(self, *args, **kwargs):
        cost.require("cluster", f"boots test-bed machines (sandbox {self.name})")
        return up(self, *args, **kwargs)

    Sandbox.up = guarded_up


_guard_sandbox_boots()


def require_or_skip(reason: str) -> None:
    """Skip when a service cannot run here, unless the run demands every service (bin/test does)."""
    if os.environ.get("KUBEBOARD_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def audit_checkpoint_dir(tmp_path_factory, monkeypatch) -> Iterator[Path]:
    """Each test's audit checkpoints outside the database go to a directory of its own (its
    child processes' too): the database is emptied between tests, the directory would not be."""
    from django.test import override_settings

    path = tmp_path_factory.mktemp("audit-checkpoints")
    monkeypatch.setenv("KUBEBOARD_AUDIT_CHECKPOINT_DIR", str(path))
    with override_settings(AUDIT_CHECKPOINT_DIR=path):
        yield path


@pytest.fixture
def make_user(db):
    from django.contrib.auth.models import Group, Permission, User

    from core.models import TeamMembership

    def make(
        username: str = "alice",
        *,
        team: str | None = "platform",
        role: str = "viewer",
        perms: tuple[str, ...] = (),
        superuser: bool = False,
    ):
        if superuser:
            user = User.objects.create_superuser(username=username, email="", password="pw-" + username)
        else:
            user = User.objects.create_user(username=username, password="pw-" + username)
        if team:
            group, _ = Group.objects.get_or_create(name=team)
            TeamMembership.objects.create(team=group, user=user, role=role)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return User.objects.get(pk=user.pk)

    return make


@pytest.fixture
def operator(make_user):
    """A team member who may create clusters and run operations."""
    return make_user("olivia", role="operator")


def team_of(user):
    """The first team ``user`` belongs to."""
    return user.team_memberships.select_related("team").first().team


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    try:
        service = start_redis(tmp_path_factory.mktemp("redis"))
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield service.url
    service.stop()


def test_database_env() -> dict:
    """Environment for child processes so they open the test database this test uses."""
    from django.db import connection

    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return {"sqlite_path": str(settings_dict["NAME"])}
    url = "postgres://{USER}@{HOST}:{PORT}/{NAME}".format(**settings_dict)
    return {"database_url": url}


@pytest.fixture
def stack_factory(transactional_db, tmp_path: Path):
    """Start daphne and django-q2 workers against this test's database, like bin/run does."""
    started: list[processes.Stack] = []

    def start(*, redis_url: str = "", workers: int = 1, **extra_env: str) -> processes.Stack:
        env = processes.kubeboard_env(redis_url=redis_url, **test_database_env(), **extra_env)
        web, address = processes.start_web(env, tmp_path / "logs")
        stack = processes.Stack(address=address, web=web)
        started.append(stack)
        for index in range(workers):
            stack.workers.append(processes.start_worker(env, tmp_path / "logs", name=f"worker{index}"))
        return stack

    yield start
    for stack in started:
        stack.stop()


def session_cookie(user) -> str:
    """A real session for ``user`` stored in the database, as the login view would create."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value

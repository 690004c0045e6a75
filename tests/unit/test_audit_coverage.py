"""Every state-changing route, command and task writes exactly its audit records, once each.

Declarations: tests/audit_coverage.py (same style as tests/permission_matrix.py).
"""

from __future__ import annotations

import importlib
import inspect
import io
from argparse import _SubParsersAction
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.db import transaction
from django.test import Client

from audit.models import AuditEvent
from tests import audit_coverage as ac
from tests import permission_matrix as pm
from tests.unit.test_permission_matrix import SITE_ROUTES, url_for

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def written(since: int) -> list[str]:
    return sorted(AuditEvent.objects.filter(seq__gt=since).values_list("action", flat=True))


def outcomes(since: int) -> list[tuple[str, str]]:
    return sorted(AuditEvent.objects.filter(seq__gt=since).values_list("action", "outcome"))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _check(entry, since: int, what: str) -> None:
    found = written(since)
    if isinstance(entry, (ac.Audited, ac.Elsewhere)):
        assert found == entry.expected, (
            f"{what} wrote {found or 'no audit record'}; expected exactly {entry.expected} (one record per action). "
            "Fix the service, or update tests/audit_coverage.py if the actions changed on purpose."
        )
        wrong = [(action, outcome) for action, outcome in outcomes(since) if outcome != entry.outcome]
        assert not wrong, f"{what} wrote {wrong}: the outcome it really had is {entry.outcome!r}"
        if isinstance(entry, ac.Elsewhere):
            assert entry.outcome != "success", f"{what}: here it cannot succeed; its records say how it did not"
            assert (ROOT / entry.test.split("::")[0]).exists(), f"{what}: {entry.test} does not exist"
    else:
        assert found == [], f"{what} is declared {type(entry).__name__} but wrote {found}"


# --- routes ---------------------------------------------------------------------------------


def _posted_routes() -> list[str]:
    return sorted(key for key, route in pm.MATRIX.items() if "POST" in route.expectations() and key in SITE_ROUTES)


def test_every_post_route_is_declared():
    missing = [
        key
        for key in _posted_routes()
        if key not in ac.ROUTES and pm.MATRIX[key].POST is not None and _changes_state(key)
    ]
    assert not missing, (
        f"POST routes without an entry in tests/audit_coverage.py ROUTES: {missing}. Add "
        '"name": {"POST": Audited("the.action", role=..., data=lambda w: {...})} (or ReadOnly/Elsewhere with a reason).'
    )


def _changes_state(key: str) -> bool:
    """A POST the permission matrix lets someone perform (a redirect or a rendered result)."""
    return any(status not in (pm.LOGIN, 403, 404, 405) for status in pm.MATRIX[key].POST)


def test_get_never_writes_a_record():
    world = pm.build_world()
    client = Client()
    client.force_login(world.users["superuser"])
    offenders = []
    for key, route in sorted(pm.MATRIX.items()):
        if "GET" not in route.expectations() or key not in SITE_ROUTES:
            continue
        before = last_seq()
        url = url_for(key, route, world)
        response = client.get(url)
        if response.streaming:
            _consume(response)
        if written(before):
            offenders.append(f"GET {key} wrote {written(before)}")
    assert not offenders, "\n".join(offenders)


def _consume(response) -> None:
    """Read a streamed body to its end (an asynchronous one too), so its queries run."""
    from asgiref.sync import async_to_sync

    if response.is_async:

        async def read() -> None:
            async for _ in response.streaming_content:
                pass

        async_to_sync(read)()
    else:
        for _ in response.streaming_content:
            pass


ROUTE_CASES = sorted((key, method) for key, methods in ac.ROUTES.items() for method in methods)


@pytest.mark.parametrize(("key", "method"), ROUTE_CASES, ids=[f"{k} {m}" for k, m in ROUTE_CASES])
def test_route_writes_exactly_its_records(key, method):
    _run_route(key, method, ac.ROUTES[key][method])


REFUSED_ROUTE_CASES = sorted(ac.REFUSED_ROUTES)


@pytest.mark.parametrize("key", REFUSED_ROUTE_CASES)
def test_refused_route_writes_one_record_with_the_outcome_it_had(key):
    entry = ac.REFUSED_ROUTES[key]
    assert isinstance(ac.ROUTES.get(key, {}).get("POST"), ac.Audited), f"{key}: refused runs are of audited routes"
    assert entry.outcome != "success", f"{key}: a refused or failed run is not a success"
    _run_route(key, "POST", entry)


def _run_route(key: str, method: str, entry) -> None:
    world = pm.build_world()
    if getattr(entry, "setup", None):
        entry.setup(world)
    client = Client()
    user = world.users[entry.role]
    if user is not None:
        client.force_login(user)
    before = last_seq()
    url = url_for(key, pm.MATRIX[key], world)
    data = entry.data(world)
    with transaction.atomic():  # on_commit work (queued tasks) is not run here
        response = client.generic(method, url, data=_encode(data), content_type="application/x-www-form-urlencoded")
        if response.streaming:
            _consume(response)
    assert response.status_code < 500, f"{method} {key} answered {response.status_code}"
    _check(entry, before, f"{method} {key} (answered {response.status_code})")
    _no_secret_recorded(data, before, f"{method} {key}")


SECRET_FIELDS = (
    "kubeconfig_text",
    "password",
    "old_password",
    "new_password1",
    "new_password2",
    "ssh_private_key",
    "ssh_password",
    "ssh_key_passphrase",
    "token",
)


def _no_secret_recorded(data: dict, since: int, what: str) -> None:
    """A secret the request carried is in no record it wrote (a refusal's reason included)."""
    import json

    text = json.dumps(list(AuditEvent.objects.filter(seq__gt=since).values("details", "changes", "object_repr")))
    for field in SECRET_FIELDS:
        value = str(data.get(field) or "")
        inner = [  # a kubeconfig's own secrets
            line.split(":", 1)[1].strip()
            for line in value.splitlines()
            if line.strip().split(":", 1)[0] in ("token", "client-key-data", "password")
        ]
        for secret in [value, *inner]:
            if len(secret) >= 12:
                assert secret not in text, f"{what} wrote its {field} (or a part of it) into the audit trail"


FORBIDDEN_POSTS = sorted(
    (key, role)
    for key, route in pm.MATRIX.items()
    if key in SITE_ROUTES and route.POST is not None
    for role, status in zip(pm.ROLES, route.POST, strict=True)
    if status == 403 and role != "anonymous"
)


@pytest.mark.parametrize(("key", "role"), FORBIDDEN_POSTS, ids=[f"{k} {r}" for k, r in FORBIDDEN_POSTS])
def test_a_post_refused_for_the_role_writes_one_denied_record(key, role):
    """Every POST the permission matrix refuses (403) to a signed-in user: one access.denied."""
    world = pm.build_world()
    client = Client()
    client.force_login(world.users[role])
    before = last_seq()
    with transaction.atomic():
        response = client.post(url_for(key, pm.MATRIX[key], world), pm.MATRIX[key].data(world))
    assert response.status_code == 403
    records = list(AuditEvent.objects.filter(seq__gt=before))
    assert [(r.action, r.outcome, r.actor_name, r.details["route"]) for r in records] == [
        ("access.denied", "denied", world.users[role].username, key)
    ]


def test_every_route_that_accepts_a_post_is_declared():
    """Found from the URL patterns, not from a list: a POST a route accepts without an entry in
    tests/audit_coverage.py ROUTES fails here, even if the permission matrix forgot its POST."""
    world = pm.build_world()
    client = Client()
    client.force_login(world.users["superuser"])
    undeclared = []
    for key in sorted(SITE_ROUTES):
        if "POST" in ac.ROUTES.get(key, {}) or key not in pm.MATRIX:
            continue  # unknown to the matrix: tests/unit/test_permission_matrix.py names it
        before = last_seq()
        with transaction.atomic():
            response = client.post(url_for(key, pm.MATRIX[key], world))
            transaction.set_rollback(True)
        if response.status_code != 405:
            undeclared.append(f"{key} (answered {response.status_code}{', wrote records' if written(before) else ''})")
    assert not undeclared, (
        f"routes that accept a POST without an entry in tests/audit_coverage.py ROUTES: {undeclared}. "
        'Add "name": {"POST": Audited(...)} (or ReadOnly/Elsewhere), or refuse POST (require_GET / 405).'
    )


def _encode(data: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(data, doseq=True)


# --- management commands --------------------------------------------------------------------


def our_commands() -> list[str]:
    """Each command in one of our apps' management/commands directories (found on disk, so a new
    app's commands count too), and each subcommand as "command sub"."""
    names = []
    for path in sorted(ROOT.glob("*/management/commands/*.py")):
        if path.name.startswith("_"):
            continue
        app, name = path.parents[2].name, path.stem
        assert get_commands().get(name) == app, f"{path}: manage.py {name} is not this app's command"
        parser = load_command_class(app, name).create_parser("manage.py", name)
        subs = [action for action in parser._actions if isinstance(action, _SubParsersAction)]
        if subs:
            names += [f"{name} {sub}" for sub in sorted(subs[0].choices)]
        else:
            names.append(name)
    return names


def test_every_command_is_declared():
    commands = our_commands()
    stale = [name for name in ac.COMMANDS if name not in commands]
    assert not stale, f"tests/audit_coverage.py COMMANDS declares commands that do not exist: {stale}"
    missing = [name for name in commands if name not in ac.COMMANDS]
    assert not missing, (
        f"management commands without an entry in tests/audit_coverage.py COMMANDS: {missing}. Add "
        '"command sub": Audited("the.action", argv=lambda w: ["command", "sub", ...]) (or ReadOnly/Elsewhere).'
    )


COMMAND_CASES = sorted(name for name, entry in ac.COMMANDS.items() if getattr(entry, "argv", None))


@pytest.mark.parametrize("name", COMMAND_CASES)
def test_command_writes_exactly_its_records(name):
    _run_command(name, ac.COMMANDS[name])


REFUSED_COMMAND_CASES = sorted(ac.REFUSED_COMMANDS)


@pytest.mark.parametrize("name", REFUSED_COMMAND_CASES)
def test_refused_command_writes_one_record_with_the_outcome_it_had(name):
    entry = ac.REFUSED_COMMANDS[name]
    assert isinstance(ac.COMMANDS.get(name), ac.Audited), f"{name}: refused runs are of audited commands"
    assert entry.outcome != "success", f"{name}: a refused or failed run is not a success"
    _run_command(name, entry)


def _run_command(name: str, entry) -> None:
    world = pm.build_world()
    if getattr(entry, "setup", None):
        entry.setup(world)
    before = last_seq()
    try:
        call_command(*entry.argv(world), stdout=io.StringIO(), stderr=io.StringIO())
    except CommandError as exc:
        if getattr(entry, "outcome", "success") == "success":
            raise
        message = str(exc)
    except SystemExit as exc:
        # A read-only command that refuses (e.g. the upgrade plan of a cluster never initialized)
        # exits non-zero after printing why, with the status its entry declares (any other exit is
        # a failure); what it wrote is checked all the same.
        if not isinstance(entry, ac.ReadOnly) or exc.code != entry.exits:
            raise
        message = f"exit {exc.code}"
    else:
        assert getattr(entry, "exits", None) is None, f"manage.py {name} exited 0; its entry says {entry.exits}"
        message = "exit 0"
    _check(entry, before, f"manage.py {name} ({message})")


# --- background tasks -----------------------------------------------------------------------


def our_tasks() -> list[str]:
    found = ["audit.checkpoints.scheduled_checkpoint", "audit.verification.scheduled_verify"]
    # Every app's tasks.py, found on disk (an app is a directory with an apps.py).
    for path in sorted(ROOT.glob("*/tasks.py")):
        if not (path.parent / "apps.py").exists():
            continue
        app = path.parent.name
        module = importlib.import_module(f"{app}.tasks")
        for name, value in vars(module).items():
            if inspect.isfunction(value) and not name.startswith("_"):
                found.append(f"{app}.tasks.{name}")
    return sorted(set(found))


def test_every_task_is_declared():
    missing = [name for name in our_tasks() if name not in ac.TASKS]
    assert not missing, (
        f"background tasks without an entry in tests/audit_coverage.py TASKS: {missing}. Add "
        '"app.tasks.name": Audited("the.action", call=lambda w: ...) (or ReadOnly/Elsewhere with a reason).'
    )


TASK_CASES = sorted(name for name, entry in ac.TASKS.items() if getattr(entry, "call", None))


@pytest.mark.parametrize("name", TASK_CASES)
def test_task_writes_exactly_its_records(name):
    world = pm.build_world()
    entry = ac.TASKS[name]
    if getattr(entry, "setup", None):
        entry.setup(world)
    before = last_seq()
    entry.call(world)
    _check(entry, before, f"task {name}")


def test_elsewhere_entries_name_existing_tests():
    entries = (
        [e for group in ac.ROUTES.values() for e in group.values()]
        + list(ac.COMMANDS.values())
        + list(ac.TASKS.values())
    )
    missing = sorted(
        {e.test for e in entries if isinstance(e, ac.Elsewhere) and not (ROOT / e.test.split("::")[0]).exists()}
    )
    assert not missing, f"Elsewhere entries name tests that do not exist: {missing}"


def test_a_failed_automatic_rotation_is_recorded_once_not_at_every_retry():
    """The sweep's own actions: a rotation the cluster cannot carry out is one failure record;
    its retries (every RETRY_AFTER) that fail the same way add none."""
    from datetime import timedelta

    from django.utils import timezone

    from tokens.services import RETRY_AFTER
    from tokens.sweeps import sweep

    world = pm.build_world()
    now = timezone.now()
    type(world.token).objects.filter(pk=world.token.pk).update(
        status="active", auto_rotate=True, expires_at=now + timedelta(minutes=10), next_action_at=now
    )
    before = last_seq()
    first = sweep(now=now + timedelta(seconds=1))
    assert first.errors, "the world's cluster holds no CA key: the rotation fails"
    again = sweep(now=now + RETRY_AFTER + timedelta(seconds=2))
    assert again.errors, "the retry fails the same way"
    records = AuditEvent.objects.filter(seq__gt=before)
    assert list(records.values_list("action", "outcome")) == [("token.rotated", "failure")]
    assert records.get().details["action"] == "rotate" and "CA key" in records.get().details["error"]


def test_a_failed_keep_valid_token_create_is_recorded_once_not_at_every_retry():
    from datetime import timedelta

    from django.utils import timezone

    from tokens.models import TokenPolicy
    from tokens.services import RETRY_AFTER
    from tokens.sweeps import sweep

    world = pm.build_world()
    now = timezone.now()
    type(world.token).objects.filter(pk=world.token.pk).update(status="revoked")  # no valid join token left
    TokenPolicy.objects.update_or_create(
        cluster=world.cluster, defaults={"keep_valid_token": True, "next_check_at": now}
    )
    before = last_seq()
    assert sweep(now=now + timedelta(seconds=1)).errors, "the world's cluster holds no CA key: the create fails"
    assert sweep(now=now + RETRY_AFTER + timedelta(seconds=2)).errors, "the retry fails the same way"
    records = AuditEvent.objects.filter(seq__gt=before)
    assert list(records.values_list("action", "outcome")) == [("token.created", "failure")]
    assert records.get().details["purpose"] == "keeper"

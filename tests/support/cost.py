"""What a test costs, declared by markers and checked while it runs.

``cluster``: boots test-bed machines (a network-namespace sandbox), nearly always with a real
Kubernetes control plane on them: tens of seconds to minutes each. ``services``: starts sshd,
Redis, PostgreSQL, rsyslog, etcd or Kubeboard's own processes (daphne, django-q2 workers).

tests/conftest.py adds the marker from the fixtures a test uses (``SERVICE_FIXTURES``,
``CLUSTER_FIXTURES``). What a test starts itself, without such a fixture, is caught here: the
helpers that start a service and ``Sandbox.up`` call :func:`require`, which fails a test that
is not marked. So a new costly test cannot be forgotten by ``-m "not cluster"`` selections (the
PostgreSQL pass of bin/test), and every marker stays true.
"""

from __future__ import annotations

from typing import Any

# Fixtures that start a service or boot a cluster: a test using one (directly or through
# another fixture) gets the marker at collection.
SERVICE_FIXTURES = frozenset({"redis_server", "own_redis", "own_postgres", "stack_factory", "sshd", "rsyslog", "etcd"})
CLUSTER_FIXTURES = frozenset({"testbed", "token_testbeds"})

_current: Any = None  # the pytest item running now; None outside a test (e.g. bin/test's PostgreSQL)


def set_current(item: Any) -> None:
    global _current
    _current = item


def require(mark: str, what: str) -> None:
    """Fail the running test unless it carries ``mark``; ``what`` says what it was about to start."""
    item = _current
    if item is None or item.get_closest_marker(mark) is not None:
        return
    import pytest

    pytest.fail(
        f"{item.nodeid} {what} but is not marked `{mark}`: add pytest.mark.{mark} to it (or to the module's "
        f"pytestmark), or name the fixture that does it in tests/support/cost.py, so that selections by "
        f"cost (bin/test's PostgreSQL pass runs -m 'postgres and not cluster') see it",
        pytrace=False,
    )

"""Fixtures the integration tests share."""

from __future__ import annotations

import pytest

from tests.conftest import require_or_skip
from tests.support.services import ServiceUnavailable, start_redis


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test alone, not the session's shared one: no other test's queued tasks
    or published events reach it, and the test may stop it."""
    try:
        service = start_redis(tmp_path / "redis")
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield service
    service.stop()

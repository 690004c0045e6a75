"""What the benchmarks share: Django on a fresh embedded database, and an operation timed in-process."""

from __future__ import annotations

import os
import time
from pathlib import Path

TESTBED_GUARD = "tools.testbed.guard.assert_test_route"


def setup_django(data_dir: Path, *, testbed: bool = False) -> None:
    """Django on SQLite in ``data_dir``, migrated; a ``DATABASE_URL`` or ``REDIS_URL`` of the shell
    is ignored, so a figure never depends on services the run did not start. ``testbed``: every
    connection to a sandbox address passes the test bed's route guard, as in the tests."""
    os.environ["KUBEBOARD_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    if testbed:
        os.environ["KUBEBOARD_CONNECTION_GUARD"] = TESTBED_GUARD
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def timed_operation(operation) -> float:
    """Run ``operation`` in this process and return its wall time; stop the benchmark if it failed."""
    from operations.runner import run_operation

    began = time.perf_counter()
    outcome = run_operation(operation.pk)
    took = time.perf_counter() - began
    if outcome != "succeeded":
        operation.refresh_from_db()
        raise SystemExit(f"{operation} {outcome}: {operation.error}")
    return took

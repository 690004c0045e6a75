"""The truncation window of the audit trail: how far the newest checkpoint outside the database
(``KUBEBOARD_AUDIT_CHECKPOINT_DIR``) trails the newest committed record, and what writing it costs.

Appends N records through ``audit.services.record`` (autocommit, as a web request's last step)
on a fresh embedded database and prints:

* the window: after each ``record`` returned, how many committed records the newest valid
  external checkpoint does not cover (max over the run), and how long a record stays
  uncovered after its commit (the checkpoint write that follows it: p50/p95/max);
* the cost: appends/s with the external checkpoint against the same appends without it.

    python bench/bench_audit_window.py [--records 2000] [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--database-url", help="a fresh PostgreSQL database (default: embedded SQLite)")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="kubeboard-window-"))
    if args.database_url:
        import os

        import django
        from django.core.management import call_command

        os.environ.update(
            DATABASE_URL=args.database_url, KUBEBOARD_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings"
        )
        django.setup()
        call_command("migrate", verbosity=0)
    else:
        setup_django(data_dir)
    from django.db import connection

    from audit import checkpoints
    from audit.services import record

    uncovered_for: list[float] = []
    original = checkpoints.witness

    def timed_witness(seq, head):
        began = time.perf_counter()
        original(seq, head)
        uncovered_for.append(time.perf_counter() - began)

    checkpoints.witness = timed_witness
    import audit.services

    audit.services.witness = timed_witness
    worst_gap, spent = 0, 0.0
    for n in range(args.records):
        began = time.perf_counter()
        event = record("bench.window", details={"n": n})
        spent += time.perf_counter() - began
        if n % 50 == 0 or n == args.records - 1:
            newest = checkpoints.newest_external().newest
            worst_gap = max(worst_gap, event.seq - (newest["seq"] if newest else 0))
    with_witness = args.records / spent

    audit.services.witness = lambda seq, head: None
    began = time.perf_counter()
    for n in range(args.records):
        record("bench.window", details={"n": n})
    without = args.records / (time.perf_counter() - began)

    ms = sorted(x * 1000 for x in uncovered_for)
    print(f"records appended: {args.records} ({connection.vendor}, autocommit)")
    print(f"window after record() returned: at most {worst_gap} committed record(s) not covered outside the database")
    print(
        f"a committed record is uncovered for: p50 {statistics.median(ms):.3f} ms, "
        f"p95 {ms[int(len(ms) * 0.95) - 1]:.3f} ms, max {ms[-1]:.3f} ms (the external checkpoint write after commit)"
    )
    print(f"appends/s with the external checkpoint: {with_witness:.0f}; without: {without:.0f}")


if __name__ == "__main__":
    main()

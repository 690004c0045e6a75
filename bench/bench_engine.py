"""The operation engine's own cost: what the runner adds around phases, and what parallel groups buy.

Runs the real runner in-process on SQLite with plain-Python phases (tests/support/kinds.py):

* bookkeeping per phase: a plan of P phases that do nothing — the runner's cost per phase (events,
  attempt rows, phase rows, commits) in milliseconds, against the same run's baseline of the least
  any engine stores (two bare committed state changes per phase);
* parallel groups: N groups of one phase that waits W seconds (a remote command's stand-in), with
  the bound N and with the bound 1 — wall time against N = 1 in the same run, and the sum of W.

    python bench/bench_engine.py [--phases 200] [--groups 1,3,6] [--wait 1.0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import setup_django  # noqa: E402  (ROOT is on sys.path now)


def run(kind: str, params: dict, name: str) -> float:
    from operations.runner import run_operation
    from operations.services import start_operation
    from tests.factories import make_cluster

    operation = start_operation(make_cluster(name), kind, params=params)
    began = time.perf_counter()
    outcome = run_operation(operation.pk)
    took = time.perf_counter() - began
    assert outcome == "succeeded", outcome
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=200)
    parser.add_argument("--groups", default="1,3,6")
    parser.add_argument("--wait", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-bench-engine-") as data:
        setup_django(Path(data))
        from django.db import transaction
        from django.utils import timezone

        import tests.support.kinds  # noqa: F401  (registers the kinds)
        from operations.models import Operation, PhaseRun

        # Bookkeeping: P empty phases (as P groups of one phase, run one at a time).
        plan = [[f"g{index}", "work"] for index in range(args.phases)]
        engine = run("test-steps", {"plan": plan, "parallel": 1}, "bookkeeping")
        operation = Operation.objects.get(cluster__name="bookkeeping")
        # Baseline: the least any engine must store per phase, two committed state changes.
        phase_ids = list(operation.phases.values_list("pk", flat=True))
        began = time.perf_counter()
        for phase_id in phase_ids:
            for status in ("running", "succeeded"):
                with transaction.atomic():
                    PhaseRun.objects.filter(pk=phase_id).update(status=status, finished_at=timezone.now())
        baseline = time.perf_counter() - began
        events = operation.events.count()
        print(
            f"bookkeeping: {args.phases} phases in {engine:.2f} s through the runner "
            f"({engine / args.phases * 1000:.2f} ms per phase, {events} events, attempts and phase rows stored); "
            f"baseline two bare commits per phase {baseline / args.phases * 1000:.2f} ms -> {engine / baseline:.1f}x"
        )

        # Parallel groups: N phases that each wait W seconds.
        counts = [int(value) for value in args.groups.split(",")]
        times: dict[int, float] = {}
        for count in counts:
            plan = [[f"n{index}", "work"] for index in range(count)]
            params = {"plan": plan, "parallel": count, "sleep": args.wait}
            times[count] = run("test-steps", params, f"parallel-{count}")
            serial = run("test-steps", dict(params, parallel=1), f"serial-{count}") if count > 1 else times[count]
            base = times[counts[0]]
            print(
                f"groups N={count}: bound N {times[count]:.2f} s ({times[count] / base:.2f}x N={counts[0]}), "
                f"bound 1 {serial:.2f} s (work {count * args.wait:.1f} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

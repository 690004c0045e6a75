"""Kubeboard driving real kubeadm on test-bed machines: join scaling and orchestration overhead.

* Joins: N = 1, 3 and 6 blank workers joined by one "join workers" operation each (bound N),
  wall time of each against N = 1 in the same run (goal: N = 6 within 2x of N = 1).
* Init: Kubeboard's init operation on a blank machine against the same kubeadm phases run by a
  plain loop of ``ssh`` commands on another blank machine (files written with ``ssh … cat >``,
  then one ``ssh`` per phase) — the orchestration overhead ratio (goal: <= 1.15x). Kubeboard's
  own checks between phases (check-machine, verify-api-server, verify-cluster-info, read-back)
  do work the loop does not; the ratio leaves them out and the total is printed beside it.

Prints figures, asserts nothing. Needs root and the test bed (tools/setup-testbed.sh); uses the
sandboxes kbtbb0 (10.213.80.0/24, 1 + 10 machines) and kbtbb1 (10.213.81.0/24, 1 machine).

    python bench/bench_join.py [--sizes 1,3,6]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import setup_django, timed_operation  # noqa: E402  (ROOT is on sys.path now)

KUBEBOARD_ONLY = ("check-machine", "verify-api-server", "verify-cluster-info", "read-back")


def shell_loop_init(cluster, sandbox) -> float:
    """The same files and kubeadm phases as Kubeboard's init, from a plain loop of ssh commands."""
    import subprocess
    from datetime import timedelta
    from types import SimpleNamespace

    from django.utils import timezone

    from clusters import identity
    from kubeadm import nodeconfig, tokens
    from tools.testbed import preflight
    from workflows.init import PHASES, init_configuration_text

    machine = sandbox.node(1)
    token = tokens.generate_token()
    row = SimpleNamespace(  # what init_configuration_text reads of a token row
        token_id=token.id,
        plain_secret=lambda: token.secret,
        description="shell loop",
        expires_at=timezone.now() + timedelta(hours=24),
        usages=list(tokens.DEFAULT_USAGES),
        groups=list(tokens.DEFAULT_GROUPS),
    )
    ignored = list(preflight.TESTBED_INIT)
    machine_row = SimpleNamespace(name=machine.name, address=machine.address)
    config = init_configuration_text(cluster, machine_row, token=row, ignore_preflight_errors=ignored)
    files = [(nodeconfig.INIT_CONFIG_PATH, config.encode(), 0o600)]
    files += [(item.path, item.data, item.mode) for item in identity.authority_files(cluster)]
    kubeadm = [spec.name for spec in PHASES if spec.name not in KUBEBOARD_ONLY and spec.name != "upload-files"]
    began = time.perf_counter()
    for path, data, mode in files:
        write = f"mkdir -p {os.path.dirname(path)} && cat > {path} && chmod {mode:o} {path}"
        subprocess.run(machine.ssh_command(write), input=data, check=True, capture_output=True)
    for name in kubeadm:
        argv = nodeconfig.init_phase_argv(name, ignore_preflight_errors=ignored if name == "preflight" else ())
        done = subprocess.run(machine.ssh_command(" ".join(argv)), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"shell loop: {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,3,6", help="worker counts joined at once (default 1,3,6)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="kb-bench-join-") as data:
        setup_django(Path(data), testbed=True)
        from operations.models import PhaseRun
        from tests.support.testbed_cluster import TESTBED_IGNORE_PREFLIGHT, add_machine, blank_machines, ready_cluster
        from workflows.init import start_init
        from workflows.join import start_join

        with blank_machines("kbtbb1", "10.213.81.0/24", 1) as sb:
            baseline = ready_cluster(
                "bench-loop", f"{sb.node(1).address}:6443", ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT
            )
            loop = shell_loop_init(baseline, sb)

        with blank_machines("kbtbb0", "10.213.80.0/24", 1 + sum(sizes)) as sb:
            cluster = ready_cluster(
                "bench", f"{sb.node(1).address}:6443", ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT
            )
            machines = [add_machine(cluster, sb, index, control_plane=index == 1) for index in range(1, 2 + sum(sizes))]
            init = start_init(cluster, machines[0])
            total = timed_operation(init)
            extra = sum(
                phase.duration.total_seconds()
                for phase in PhaseRun.objects.filter(operation=init, name__in=KUBEBOARD_ONLY)
            )
            cluster.refresh_from_db()
            joins: dict[int, float] = {}
            start = 1
            for size in sizes:
                chosen = machines[start : start + size]
                start += size
                joins[size] = timed_operation(start_join(cluster, chosen, parallelism=size))
        phases = init.phases.count()

    same = total - extra
    print(f"init, Kubeboard, all {phases} phases:                {total:7.1f} s")
    print(f"  of which Kubeboard's own checks ({', '.join(KUBEBOARD_ONLY)}): {extra:5.1f} s")
    print(f"init, Kubeboard, the phases the loop runs:           {same:7.1f} s")
    print(f"init, plain shell loop over ssh (same phases):       {loop:7.1f} s")
    print(f"orchestration overhead ratio:                        {same / loop:7.2f}x   (goal <= 1.15x)")
    base = joins[sizes[0]]
    for size, took in joins.items():
        goal = "   (goal <= 2x)" if size == max(sizes) else ""
        print(f"join workers N={size:<2}  {took:7.1f} s   {took / base:5.2f}x of N={sizes[0]}{goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

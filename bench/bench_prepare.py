"""Prepare machine from the air-gapped source: 1, 3 and 6 machines at once, and a re-push.

Each size prepares that many fresh machines in one "Prepare machines" operation (bound 6) and is
timed against one machine in the same run (goal on 2 cores: 6 machines within 2x of one). Then
the same machines are prepared again: every file is already there with the same SHA-256, so
nothing is sent (printed as bytes pushed per machine).

The machines are accounts of a real OpenSSH sshd on this host whose files live in their own
trees (KUBEBOARD_PREPARE_ROOT=<dir>/{node}; tests/support/prepare_bed.py: the files and the
stand-ins for modprobe, sysctl, swapoff, systemctl); SSH, SFTP, sha256sum -c and install are
real. The set's binaries are padded to --mib MiB in all, so the push has a realistic weight.
Prints figures, asserts nothing. Needs root (sshd).

    python bench/bench_prepare.py [--sizes 1,3,6] [--mib 120]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import setup_django, timed_operation  # noqa: E402  (ROOT is on sys.path now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,3,6")
    parser.add_argument("--mib", type=int, default=120, help="the set's size in MiB (binaries padded)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="kb-bench-prepare-"))
    import os

    os.environ["KUBEBOARD_PREPARE_ROOT"] = str(work / "machines" / "{node}")
    os.environ["KUBEBOARD_ARTIFACTS_DIR"] = str(work / "store")
    os.environ["KUBEBOARD_PREPARE_MAX_PARALLEL"] = str(max(sizes))
    setup_django(work / "data")

    from artifacts.services import import_directory
    from nodes import services
    from nodes.models import Node
    from tests.factories import make_cluster
    from tests.support import prepare_bed
    from tests.support.services import free_port, start_sshd
    from workflows.models import MachinePreparation, PrepareSettings
    from workflows.prepare import start_prepare

    padding = args.mib * 1024 * 1024 // 8  # eight binaries
    artifact_set = import_directory(prepare_bed.artifact_set(work / "set", padding=padding))
    total = sum(f.size for f in artifact_set.files.all())
    # One sshd, one loopback address per machine (a machine is an address and a port).
    port = free_port()
    count = sum(sizes)
    server = start_sshd(
        work / "sshd",
        port=port,
        extra_config="".join(f"ListenAddress 127.0.0.{i}:{port}\n" for i in range(2, count + 2)),
    )
    try:
        print(f"artifact set {artifact_set.name}: {len(artifact_set.files.all())} files, {total / 2**20:.1f} MiB")
        cluster = make_cluster("bench")
        PrepareSettings.objects.create(cluster=cluster, source=PrepareSettings.Source.ARTIFACTS)
        server.authorize(services.ensure_cluster_key(cluster).public_key)
        times: dict[int, float] = {}
        made = 0
        batches: dict[int, list[Node]] = {}
        for size in sizes:
            machines = []
            for _ in range(size):
                made += 1
                name = f"m{made}"
                prepare_bed.machine_root(work / "machines" / name)
                node = Node.objects.create(
                    cluster=cluster, name=name, address=f"127.0.0.{made + 1}", ssh_port=server.port, ssh_user="root"
                )
                machines.append(_pin(node))
            batches[size] = machines
            times[size] = timed_operation(start_prepare(cluster, machines))
            pushed = [MachinePreparation.objects.get(node=n).bytes_pushed for n in machines]
            print(
                f"{size} machine(s) at once: {times[size]:6.2f} s  ({times[size] / times[sizes[0]]:.2f}x of "
                f"{sizes[0]}), pushed per machine: {sum(pushed) / len(pushed) / 2**20:.1f} MiB"
            )
        largest = batches[max(sizes)]
        again = timed_operation(start_prepare(cluster, largest))
        pushed = [MachinePreparation.objects.get(node=n).bytes_pushed for n in largest]
        print(
            f"again on the {len(largest)} prepared machines: {again:6.2f} s, pushed per machine: "
            f"{sum(pushed) / len(pushed):.0f} bytes (every file already there with the same SHA-256)"
        )
        print(f"goal: {max(sizes)} machines within 2x of one: {times[max(sizes)] / times[sizes[0]]:.2f}x")
    finally:
        server.stop()


def _pin(node):
    """What a person does on first contact: accept the key the machine offers."""
    from nodes import services
    from nodes.connect import connect
    from remote import ssh

    try:
        connect(node)
    except ssh.HostKeyUnknown as exc:
        return services.accept_host_key(node, user=None, fingerprint=exc.fingerprint)
    return node


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(bench took {time.monotonic() - started:.0f} s)")

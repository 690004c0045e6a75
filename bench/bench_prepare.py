"""Prepare machine from the air-gapped source: 1, 3 and 6 machines at once, and a re-push.

Each size prepares that many fresh machines in one "Prepare machines" operation (bound 6) and is
timed against one machine in the same run (goal on 2 cores: 6 machines within 2x of one). Then
the same machines are prepared again: every file is already there with the same SHA-256, so
nothing is sent (printed as bytes pushed per machine).

The machines are accounts of a real OpenSSH sshd on this host whose files live in their own
trees (KUBEBOARD_PREPARE_ROOT=<dir>/{node}; tests/support/prepare_bed.py: the files and the
stand-ins for modprobe, sysctl, swapoff, systemctl); SSH, SFTP, the hashing and install are
real. The set's binaries are padded to --mib MiB in all, so the push has a realistic weight. The
sessions start with a blank machine's shell files (Debian's), not this host's root .bashrc.

The machines share this host's cores with Kubeboard, so once the cores are busy the ratio is
about 3x the cores one machine's Prepare keeps busy (printed), whatever Kubeboard does; the
CPU lines say which side the seconds went to.
Prints figures, asserts nothing. Needs root (sshd).

    python bench/bench_prepare.py [--sizes 1,3,6] [--mib 120]
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    from tools.testbed.sandbox import blank_shell_files
    from workflows.models import MachinePreparation, PrepareSettings
    from workflows.prepare import start_prepare

    _count_commands()
    padding = args.mib * 1024 * 1024 // 8  # eight binaries
    artifact_set = import_directory(prepare_bed.artifact_set(work / "set", padding=padding))
    total = sum(f.size for f in artifact_set.files.all())
    # One sshd, one loopback address per machine (a machine is an address and a port).
    port = free_port()
    count = sum(sizes)
    server = start_sshd(
        work / "sshd",
        port=port,
        extra_config="".join(f"ListenAddress 127.0.0.{i}:{port}\n" for i in range(2, count + 2))
        # A blank machine's root home: six real machines would each pay their own shell start-up,
        # not share this host's pyenv .bashrc on its two cores.
        + f"SetEnv HOME={blank_shell_files(work / 'home')}\n",
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
            operation = start_prepare(cluster, machines)
            cpu = (time.process_time(), _sshd_cpu(server), COMMANDS[0])
            times[size] = timed_operation(operation)
            cpu = (time.process_time() - cpu[0], _sshd_cpu(server) - cpu[1], COMMANDS[0] - cpu[2])
            if size == 1:
                ONE_MACHINE_CPU[0] = cpu[0] + cpu[1]
            pushed = [MachinePreparation.objects.get(node=n).bytes_pushed for n in machines]
            print(
                f"{size} machine(s) at once: {times[size]:6.2f} s  ({times[size] / times[sizes[0]]:.2f}x of "
                f"{sizes[0]}), pushed per machine: {sum(pushed) / len(pushed) / 2**20:.1f} MiB"
            )
            print("    " + _breakdown(operation))
            print(
                f"    CPU: Kubeboard's process {cpu[0]:.1f} s, the machines' side (sshd, shells, hashing) "
                f"{cpu[1]:.1f} s, of {times[size] * (os.cpu_count() or 1):.0f} CPU-seconds the host had; "
                f"{cpu[2] / size:.0f} SSH commands per machine"
            )
        largest = batches[max(sizes)]
        operation = start_prepare(cluster, largest)
        cpu = (time.process_time(), _sshd_cpu(server))
        again = timed_operation(operation)
        cpu = (time.process_time() - cpu[0], _sshd_cpu(server) - cpu[1])
        pushed = [MachinePreparation.objects.get(node=n).bytes_pushed for n in largest]
        print(
            f"again on the {len(largest)} prepared machines: {again:6.2f} s, pushed per machine: "
            f"{sum(pushed) / len(pushed):.0f} bytes (every file already there with the same SHA-256)"
        )
        print("    " + _breakdown(operation))
        print(f"    CPU: Kubeboard's process {cpu[0]:.1f} s, the machines' side {cpu[1]:.1f} s")
        one = ONE_MACHINE_CPU[0]
        if one:
            print(
                f"one machine alone kept {one / times[sizes[0]]:.2f} of this host's cores busy "
                f"({one:.1f} CPU-s in {times[sizes[0]]:.2f} s): with every core shared, "
                f"{max(sizes)} at once cannot take less than {max(sizes) * one / (os.cpu_count() or 1) / times[sizes[0]]:.2f}x"
            )
        print(f"goal: {max(sizes)} machines within 2x of one: {times[max(sizes)] / times[sizes[0]]:.2f}x")
    finally:
        server.stop()
        # The machines' trees and the store hold the set several times over (2.6 GB at 120 MiB).
        shutil.rmtree(work, ignore_errors=True)


def _breakdown(operation) -> str:
    """Where a machine's time went: each phase's mean wall time over the machines (from its first
    to its last event), the push split into sending (up to "Sent N bytes") and the hashing on the machine."""
    from collections import defaultdict

    from operations.models import Event

    spans: dict[tuple[str, str], list] = defaultdict(list)
    sent_at: dict[str, object] = {}
    for event in Event.objects.filter(operation=operation).exclude(group="").order_by("seq"):
        spans[(event.group, event.phase)].append(event.created)
        if event.phase == "push" and event.message.startswith("Sent ") and " bytes to " in event.message:
            sent_at[event.group] = event.created
    per_phase: dict[str, list[float]] = defaultdict(list)
    for (group, phase), times in spans.items():
        per_phase[phase].append((times[-1] - times[0]).total_seconds())
        if phase == "push" and group in sent_at:
            per_phase["  push: send"].append((sent_at[group] - times[0]).total_seconds())
            per_phase["  push: hash on the machine"].append((times[-1] - sent_at[group]).total_seconds())
    return ", ".join(f"{phase.strip()} {sum(v) / len(v):.1f} s" for phase, v in per_phase.items())


COMMANDS = [0]
ONE_MACHINE_CPU = [0.0]


def _count_commands() -> None:
    """Count the commands Kubeboard runs over SSH (each is a session and a shell on the machine)."""
    from remote import ssh

    for name in ("run", "_quiet"):
        original = getattr(ssh.Connection, name)

        def counted(self, *args, _original=original, **kwargs):
            COMMANDS[0] += 1
            return _original(self, *args, **kwargs)

        setattr(ssh.Connection, name, counted)


def _sshd_cpu(server) -> float:
    """CPU seconds of the sshd and every session it has reaped (its shells, the hashing, install)."""
    fields = Path(f"/proc/{server.pid_file.read_text().strip()}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


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

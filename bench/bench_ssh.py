"""The SSH transport (remote.ssh) against the OpenSSH client, on a real sshd on loopback.

Usage: python bench/bench_ssh.py [--runs N] [--megabytes M] [--parallel P]   (as root: it starts sshd)

Prints, each with the OpenSSH client measured in the same run as the baseline:
* connect + one command + close, N times (`ssh host true` in a shell loop);
* N commands over one open connection (the way a phase runs several commands);
* M MB of output lines delivered one by one to a callback (`ssh host cmd > /dev/null`);
* P connections each running `sleep 1` at once from P threads (wall time; 1 s is ideal).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup_django(data_dir: Path) -> None:
    os.environ["KUBEBOARD_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("KUBEBOARD_CONNECTION_GUARD", "tools.testbed.guard.assert_test_route")
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=10)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kb-bench-ssh-"))
    setup_django(work / "data")
    from nodes import services
    from nodes.connect import connect
    from nodes.models import Node
    from remote import ssh
    from tests.factories import make_cluster
    from tests.support.services import start_sshd

    server = start_sshd(work / "sshd")
    try:
        cluster = make_cluster("bench")
        pair = services.ensure_cluster_key(cluster)
        server.authorize(pair.public_key)
        node = Node.objects.create(cluster=cluster, name="m1", address=server.host, ssh_port=server.port)
        try:
            connect(node)
        except ssh.HostKeyUnknown as exc:
            services.accept_host_key(node, user=None, fingerprint=exc.fingerprint)
        key_file = work / "id_ed25519"
        key_file.write_text(pair.private_key.reveal())
        key_file.chmod(0o600)
        known = work / "known_hosts"
        host_key = Node.objects.get(pk=node.pk).ssh_host_key
        known.write_text(f"[{server.host}]:{server.port} {host_key}\n")
        openssh = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(key_file),
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-p",
            str(server.port),
            f"root@{server.host}",
        ]

        def report(label: str, ours: float, baseline: float, unit: str = "ms", scale: float = 1000) -> None:
            print(f"{label:<44} {ours * scale:>9.1f}{unit} {baseline * scale:>9.1f}{unit} {ours / baseline:>7.2f}x")

        print(f"{'':<44} {'remote.ssh':>11} {'OpenSSH':>11} {'ratio':>8}")

        def ours_once() -> None:
            with connect(node) as conn:
                conn.run("true")

        ours = statistics.median(timed(ours_once) for _ in range(args.runs))
        theirs = statistics.median(
            timed(lambda: subprocess.run([*openssh, "true"], check=True)) for _ in range(args.runs)
        )
        report(f"connect + `true` + close (median of {args.runs})", ours, theirs)

        with connect(node) as conn:
            ours = timed(lambda: [conn.run("true") for _ in range(args.runs)]) / args.runs
        theirs = timed(lambda: [subprocess.run([*openssh, "true"], check=True) for _ in range(args.runs)]) / args.runs
        report("one command on an open connection (mean)", ours, theirs)

        command = f"yes 'a line of kubeadm output, about sixty bytes long......' | head -c {args.megabytes}000000"
        lines = 0

        def count(_line: str) -> None:
            nonlocal lines
            lines += 1

        with connect(node) as conn:
            ours = timed(lambda: conn.run(command, on_line=count))
        theirs = timed(lambda: subprocess.run([*openssh, command], check=True, stdout=subprocess.DEVNULL))
        print(
            f"{args.megabytes} MB of output ({lines} lines to a callback)".ljust(44)
            + f" {args.megabytes / ours:>8.1f}MB/s {args.megabytes / theirs:>8.1f}MB/s {theirs / ours:>7.2f}x"
        )

        def sleeper() -> None:
            with connect(node) as conn:
                conn.run("sleep 1")

        def parallel() -> None:
            threads = [threading.Thread(target=sleeper) for _ in range(args.parallel)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        def parallel_openssh() -> None:
            processes = [subprocess.Popen([*openssh, "sleep 1"]) for _ in range(args.parallel)]
            for process in processes:
                process.wait()

        report(
            f"{args.parallel} threads, each connect + `sleep 1` (wall)",
            timed(parallel),
            timed(parallel_openssh),
            "s ",
            1,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()

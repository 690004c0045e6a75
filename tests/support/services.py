"""Real Redis and PostgreSQL servers on loopback, started for tests and benchmarks.

Also runnable: ``python -m tests.support.services postgres DIR`` starts a server and prints
its DATABASE_URL (bin/test uses it for the PostgreSQL pass); ``stop DIR`` stops it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ServiceUnavailable(RuntimeError):
    """A server binary is missing; the message says which package installs it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class Service:
    name: str
    url: str
    directory: Path
    stop_command: list[str] = field(default_factory=list)
    pid_file: Path | None = None

    def stop(self) -> None:
        if self.stop_command:
            subprocess.run(self.stop_command, capture_output=True, timeout=60)
        elif self.pid_file is not None and self.pid_file.exists():
            try:
                os.kill(int(self.pid_file.read_text().strip()), 15)
            except (ProcessLookupError, ValueError):
                pass


def start_redis(directory: Path) -> Service:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("redis-server is not installed (Debian package redis-server; bin/test installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    pid_file = directory / "redis.pid"
    subprocess.run(
        [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "yes", "--pidfile", str(pid_file), "--logfile", str(directory / "redis.log"),
            "--dir", str(directory),
        ],
        check=True,
    )
    wait_for_port(port)
    return Service("redis", f"redis://127.0.0.1:{port}/0", directory, pid_file=pid_file)


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{part}'" for part in command)]
    return command


def start_postgres(directory: Path) -> Service:
    if not (PG_BIN / "initdb").exists():
        raise ServiceUnavailable("PostgreSQL 15 server binaries are missing (Debian package postgresql-15)")
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    port = free_port()
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(directory / "postgres.log"), "-w",
                "-o", f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    wait_for_port(port)
    return Service(
        "postgres",
        f"postgres://postgres@127.0.0.1:{port}/postgres",
        directory,
        stop_command=_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"postgres", "stop"}:
        print("usage: python -m tests.support.services postgres DIR | stop DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    if argv[0] == "postgres":
        service = start_postgres(directory)
        print(service.url)
    else:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(directory / "data"), "-m", "immediate", "-w", "stop"]), capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

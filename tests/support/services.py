"""Real Redis, PostgreSQL and OpenSSH servers on loopback, started for tests and benchmarks.

Also runnable: ``python -m tests.support.services postgres DIR`` starts a server and prints
its DATABASE_URL (bin/test uses it for the PostgreSQL pass); ``stop DIR`` stops it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import cost

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


def redis_argv(port: int, directory: Path) -> list[str]:
    """A test Redis on 127.0.0.1:``port`` that keeps nothing on disk (no RDB, no AOF)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("redis-server is not installed (Debian package redis-server; bin/test installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
    ]


def start_redis(directory: Path) -> Service:
    cost.require("services", "starts Redis")
    port = free_port()
    pid_file = directory / "redis.pid"
    subprocess.run(
        [
            *redis_argv(port, directory),
            "--daemonize",
            "yes",
            "--pidfile",
            str(pid_file),
            "--logfile",
            str(directory / "redis.log"),
        ],
        check=True,
    )
    wait_for_port(port)
    return Service("redis", f"redis://127.0.0.1:{port}/0", directory, pid_file=pid_file)


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{part}'" for part in command)]
    return command


def start_postgres(directory: Path, *, fsync: bool = False) -> Service:
    """A throwaway PostgreSQL 15 in ``directory``. ``fsync`` off by default (tests need no
    durability); the audit benchmark turns it on, as in production, for its append figures."""
    cost.require("services", "starts PostgreSQL")
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
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(directory / "postgres.log"),
                "-w",
                "-o",
                f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'} -c max_connections=200",
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


@dataclass
class SSHServer:
    """An OpenSSH sshd on loopback (started as root, as on the test bed) with its own host key."""

    directory: Path
    port: int
    host_key: Path
    password_auth: bool
    extra_config: str = ""
    host = "127.0.0.1"

    @property
    def pid_file(self) -> Path:
        return self.directory / "sshd.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    def host_key_fingerprint(self) -> str:
        """What ``ssh-keygen -lf`` prints for the host key (the second field, "SHA256:…")."""
        out = subprocess.run(["ssh-keygen", "-lf", f"{self.host_key}.pub"], capture_output=True, text=True, check=True)
        return out.stdout.split()[1]

    def authorize(self, *public_keys: str) -> None:
        with open(self.authorized_keys, "a") as handle:
            for key in public_keys:
                handle.write(key.strip() + "\n")

    def start(self) -> None:
        config = self.directory / "sshd_config"
        config.write_text(
            f"ListenAddress {self.host}:{self.port}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.pid_file}\n"
            # Read as root: the test's directory is private, and sshd reads key files as the user.
            "AuthorizedKeysFile none\n"
            f"AuthorizedKeysCommand /bin/cat {self.authorized_keys}\n"
            "AuthorizedKeysCommandUser root\n"
            "PermitRootLogin prohibit-password\n"
            f"PasswordAuthentication {'yes' if self.password_auth else 'no'}\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PrintMotd no\n"
            "UseDNS no\n"
            "MaxStartups 100\n"
            "MaxSessions 100\n"
            "Subsystem sftp internal-sftp\n" + self.extra_config
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        subprocess.run(["/usr/sbin/sshd", "-t", "-f", str(config)], check=True, capture_output=True)
        subprocess.run(["/usr/sbin/sshd", "-f", str(config), "-E", str(self.log_path)], check=True)
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop the listener (sessions already open keep running, as with a real sshd restart)."""
        if not self.pid_file.exists():
            return
        try:
            os.kill(int(self.pid_file.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                return

    def restart(self, *, new_host_key: bool = False, key_type: str = "ed25519") -> None:
        """Restart on the same port; with ``new_host_key`` the machine looks reinstalled."""
        self.stop()
        if new_host_key:
            self.host_key.unlink(missing_ok=True)
            Path(f"{self.host_key}.pub").unlink(missing_ok=True)
            _make_host_key(self.host_key, key_type)
        self.start()


def _make_host_key(path: Path, key_type: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "test-host", "-f", str(path)], check=True)


def start_sshd(
    directory: Path,
    *,
    authorized_keys: tuple[str, ...] | list[str] = (),
    password_auth: bool = False,
    host_key: Path | None = None,
    key_type: str = "ed25519",
    port: int | None = None,
    extra_config: str = "",
) -> SSHServer:
    """Start a real OpenSSH sshd on 127.0.0.1 that accepts ``authorized_keys`` for every user
    (root included) and, with ``password_auth``, passwords of local users. ``extra_config``
    lines are appended to sshd_config (e.g. ``SetEnv PATH=…``)."""
    cost.require("services", "starts sshd")
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh-keygen") is None:
        raise ServiceUnavailable("OpenSSH is not installed (Debian packages openssh-server openssh-client)")
    if os.geteuid() != 0:
        raise ServiceUnavailable("sshd for tests must start as root (it switches to the logged-in user)")
    directory.mkdir(parents=True, exist_ok=True)
    if host_key is None:
        host_key = directory / f"ssh_host_{key_type}_key"
        _make_host_key(host_key, key_type)
    server = SSHServer(
        directory=directory,
        port=port or free_port(),
        host_key=host_key,
        password_auth=password_auth,
        extra_config=extra_config,
    )
    server.authorized_keys.touch()
    server.authorize(*authorized_keys)
    server.start()
    return server


@contextmanager
def local_user(prefix: str = "kbtest", *, sudo: bool = False) -> Iterator[tuple[str, str]]:
    """A throwaway local account with a random password (password logins need a real user);
    with ``sudo``, allowed passwordless sudo (a sudoers.d drop-in removed afterwards)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        raise ServiceUnavailable("creating a test user needs root and useradd (Debian package passwd)")
    if sudo and shutil.which("sudo") is None:
        raise ServiceUnavailable("sudo is not installed (Debian package sudo; bin/test installs it)")
    name = f"{prefix}{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    home = Path(tempfile.mkdtemp(prefix=f"{name}-home-"))
    rule = Path(f"/etc/sudoers.d/{name}")
    subprocess.run(["useradd", "--home-dir", str(home), "--no-create-home", "--shell", "/bin/sh", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}", text=True, check=True)
        shutil.chown(home, name)
        if sudo:
            rule.write_text(f"{name} ALL=(ALL) NOPASSWD: ALL\n")
            rule.chmod(0o440)
            subprocess.run(["visudo", "-cf", str(rule)], check=True, capture_output=True)
        yield name, password
    finally:
        rule.unlink(missing_ok=True)
        # --force: the user's last SSH session may still be closing.
        subprocess.run(["userdel", "--force", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"postgres", "stop"}:
        print("usage: python -m tests.support.services postgres DIR | stop DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    if argv[0] == "postgres":
        service = start_postgres(directory)
        print(service.url)
    else:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(directory / "data"), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

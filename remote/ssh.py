"""SSH to managed machines, with asyncssh.

Synchronous on the outside (phases, tasks and management commands are plain threads), async
inside: one private event loop thread per process carries every connection, and callers
block on ``run_coroutine_threadsafe``. So any number of threads may each hold connections,
and output lines are handed to ``on_line`` in the caller's own thread (where it may use the
database) as they arrive, through a bounded queue: a slow consumer pauses reading, and SSH
flow control then pauses the remote side; nothing is buffered without bound.

Safety: every connection first passes ``core.network.check_destination`` and goes to the
address it returns; the host key must equal the key a person pinned. An unknown key is handed
to the target's ``on_offered`` (the machine's owner records it) and refused
(``HostKeyUnknown``); a different key is handed over too, and refused until a person accepts
it (``HostKeyChanged``). What to connect to comes as a ``Target`` the machine's owner builds
(``nodes.connect``): this module reads no table.

Remote commands run in their own process group (``setsid``) with stderr merged into stdout.
With ``job=`` the group id is written to ``/run/kubeboard/jobs/<job>.pid`` first, so a later
connection (after a worker crash) can see whether the job still runs and kill it, and a
second copy is refused while the first is alive. A cancel or timeout kills the whole group.
"""

from __future__ import annotations

import asyncio
import errno
import os
import queue
import re
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncssh
from django.conf import settings

from core import network
from core.formatting import duration_words
from remote import keys

JOBS_DIR = "/run/kubeboard/jobs"
# Longer lines keep their start; the rest is counted and dropped (a megabyte line is noise).
MAX_LINE_BYTES = 16 * 1024
# Batches of lines (one per chunk read, at most 64 KiB of output each) waiting for the
# caller's on_line; when full, reading from the channel pauses.
QUEUE_BATCHES = 64
READ_BYTES = 65536
KILL_GRACE_SECONDS = 5
MAX_FILE_BYTES = 64 * 1024 * 1024
# Host key types in OpenSSH's order of preference, so first contact pins the key ssh would.
HOST_KEY_ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
)
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_MARK = "\x1ekubeboard-"


class SSHError(Exception):
    """A machine could not be used; ``str()`` says what happened, ``hint`` what to do next."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        return self.args[0]

    @property
    def full(self) -> str:
        return f"{self.args[0]} — {self.hint}" if self.hint else self.args[0]


class Unreachable(SSHError):
    pass


class AuthenticationFailed(SSHError):
    pass


class GuardRefused(SSHError):
    pass


class HostKeyUnknown(SSHError):
    def __init__(self, message: str, *, fingerprint: str, key: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.fingerprint = fingerprint
        self.key = key


class HostKeyChanged(SSHError):
    def __init__(self, message: str, *, pinned_fingerprint: str, offered_fingerprint: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.pinned_fingerprint = pinned_fingerprint
        self.offered_fingerprint = offered_fingerprint


class CommandCancelled(SSHError):
    pass


class CommandTimeout(SSHError):
    pass


class JobAlreadyRunning(SSHError):
    """``run(job=…)`` found the same job still alive on the machine (e.g. left by a crashed worker)."""

    def __init__(self, message: str, *, pgid: int, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.pgid = pgid


class SudoFailed(SSHError):
    pass


class RemoteFileError(SSHError):
    pass


@dataclass
class CommandResult:
    exit_status: int | None
    signal: str | None
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


# --- the private event loop ----------------------------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    """The process's SSH loop, started on first use (and again in a forked child)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or not _loop.is_running():
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            threading.Thread(target=run, name="kubeboard-ssh", daemon=True).start()
            started.wait()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def _call(coroutine):
    return asyncio.run_coroutine_threadsafe(coroutine, _event_loop()).result()


def connect_timeout() -> float:
    return float(getattr(settings, "SSH_CONNECT_TIMEOUT", 10.0))


# --- output lines --------------------------------------------------------------------------


class LineSplitter:
    """Bytes in, complete decoded lines out; each line capped at ``limit`` bytes."""

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._dropped = 0

    def feed(self, data: bytes) -> list[str]:
        lines = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._append(data[start:])
                return lines
            self._append(data[start:end])
            lines.append(self._take())
            start = end + 1

    def close(self) -> list[str]:
        return [self._take()] if self._buffer or self._dropped else []

    def _append(self, piece: bytes) -> None:
        room = self.limit - len(self._buffer)
        if room > 0:
            self._buffer += piece[:room]
        self._dropped += max(0, len(piece) - max(room, 0))

    def _take(self) -> str:
        raw = bytes(self._buffer)
        if raw.endswith(b"\r") and not self._dropped:
            raw = raw[:-1]
        text = raw.decode("utf-8", errors="replace")
        if self._dropped:
            text += f" … [line cut: {self._dropped} more bytes]"
        self._buffer.clear()
        self._dropped = 0
        return text


# --- what a connection needs to know about the machine --------------------------------------

# How the machine is logged in to (the values of nodes.models.Node.Credential).
CLUSTER_KEY = "cluster-key"
PRIVATE_KEY = "private-key"
PASSWORD = "password"


@dataclass
class Credentials:
    """What logs in: client keys, or a password (``None``: keys only)."""

    client_keys: list = field(default_factory=list)
    password: str | None = None
    key_fingerprint: str = ""


@dataclass
class Target:
    """One machine to connect to, as its owner knows it right now (a person may have accepted a
    key since the last connection, so the owner builds a new one for each connection)."""

    label: str
    host: str
    port: int
    user: str
    credential: str  # CLUSTER_KEY, PRIVATE_KEY or PASSWORD: worded into an authentication failure
    pinned_line: str = ""
    pinned_fingerprint: str = ""
    offered_line: str = ""
    offered_fingerprint: str = ""
    cluster_name: str = ""
    # Called only right before logging in, so a secret is decrypted only when it is used; may
    # raise AuthenticationFailed (no key pair yet, a stored key that cannot be read).
    credentials: Callable[[], Credentials] | None = field(default=None, repr=False)
    # Told of a host key that is not the pinned one (line, fingerprint, changed), so a person can
    # compare and accept it; called before the connection is refused.
    on_offered: Callable[[str, str, bool], None] | None = field(default=None, repr=False)
    client_keys: list = field(default_factory=list, repr=False)
    password: str | None = field(default=None, repr=False)
    key_fingerprint: str = ""

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _load_credentials(target: Target) -> None:
    if target.credentials is None:
        return
    loaded = target.credentials()
    target.client_keys, target.password, target.key_fingerprint = (
        loaded.client_keys,
        loaded.password,
        loaded.key_fingerprint,
    )


def _destination(host: str, port: int) -> str:
    try:
        return network.check_destination(host, port)
    except network.ConnectionRefused as exc:
        if isinstance(exc.__cause__, socket.gaierror):
            raise Unreachable(str(exc), hint=f"check the machine's host name {host!r} (DNS or /etc/hosts)") from exc
        raise GuardRefused(
            str(exc),
            hint="the network guard (KUBEBOARD_CONNECTION_GUARD) does not allow this address; nothing was sent",
        ) from exc


def _unreachable(target: Target, exc: BaseException, timeout: float) -> Unreachable:
    where = target.where
    if isinstance(exc, TimeoutError):
        return Unreachable(
            f"no SSH answer from {where} within {duration_words(timeout)}",
            hint="check the address and port, that the machine is up, and that no firewall drops SSH",
        )
    if isinstance(exc, ConnectionRefusedError):
        return Unreachable(
            f"{where} refused the connection (nothing listens on port {target.port})",
            hint="check that sshd runs on the machine and listens on that port",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        return Unreachable(
            f"no route to {where} ({exc.strerror})", hint="check the address and the network between Kubeboard and it"
        )
    if isinstance(exc, asyncssh.ConnectionLost | asyncssh.DisconnectError):
        return Unreachable(
            f"{where} closed the SSH connection: {exc}",
            hint="check that this port is an SSH server and read its log (MaxStartups, AllowUsers, DenyUsers)",
        )
    return Unreachable(f"cannot connect to {where}: {exc}", hint="check the address, port and network")


def _auth_failed(target: Target) -> AuthenticationFailed:
    if target.credential == PASSWORD:
        return AuthenticationFailed(
            f"the machine {target.where} refused the password for user {target.user}",
            hint="check the password; the machine may also refuse password logins (sshd PasswordAuthentication no)",
        )
    if target.credential == CLUSTER_KEY:
        return AuthenticationFailed(
            f"the machine {target.where} refused the cluster's key {target.key_fingerprint} for user {target.user}",
            hint=f"add the cluster's public key to ~{target.user}/.ssh/authorized_keys on the machine "
            f"(shown on the node page, or `manage.py node show-key {target.cluster_name}`)",
        )
    return AuthenticationFailed(
        f"the machine {target.where} refused key {target.key_fingerprint} for user {target.user}",
        hint=f"add that key's public half to ~{target.user}/.ssh/authorized_keys on the machine, or check the user",
    )


class _Client(asyncssh.SSHClient):
    """Remembers a host key that did not match the pin, so the error can show it."""

    def __init__(self) -> None:
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host, addr, port, key) -> bool:
        self.offered = key
        return False


# AES-GCM first: pushing an artifact set (hundreds of MB per machine) is bound by this process's
# cipher, and asyncssh's AES-GCM (AES-NI through OpenSSL) sent 300 MB over SFTP to a local sshd in
# a median 1.14 s against 1.75 s for chacha20-poly1305, its default first choice. Every default
# stays offered, so a server without AES-GCM still connects.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _encryption_algs() -> list[str]:
    defaults = [alg.decode() for alg in asyncssh.encryption.get_default_encryption_algs()]
    return [alg for alg in PREFERRED_CIPHERS if alg in defaults] + [
        alg for alg in defaults if alg not in PREFERRED_CIPHERS
    ]


def _common_options() -> dict:
    # Nothing from this process's ~/.ssh (config, agent, default keys, known_hosts) may
    # change where or how Kubeboard connects.
    return {
        "config": [],
        "agent_path": None,
        "x509_trusted_certs": None,
        "gss_host": None,
        "request_pty": False,
        "encryption_algs": _encryption_algs(),
    }


async def _scan(address: str, port: int, timeout: float) -> asyncssh.SSHKey:
    key = await asyncio.wait_for(
        asyncssh.get_server_host_key(address, port, server_host_key_algs=list(HOST_KEY_ALGORITHMS), config=[]),
        timeout,
    )
    if key is None:
        raise asyncssh.DisconnectError(0, "the server offered no host key")
    return key


class _Mismatch(Exception):
    def __init__(self, key: asyncssh.SSHKey) -> None:
        self.key = key


async def _open(target: Target, address: str, timeout: float) -> asyncssh.SSHClientConnection:
    pinned = keys.import_public_key(target.pinned_line)
    client = _Client()
    options = _common_options() | {
        "known_hosts": ([pinned], [], []),
        "server_host_key_algs": [alg.decode() for alg in pinned.sig_algorithms],
        "username": target.user,
        "client_keys": target.client_keys or None,
        "password": target.password if target.password is not None else None,
        "preferred_auth": "publickey" if target.client_keys else "password,keyboard-interactive",
        "ignore_encrypted": True,
        "keepalive_interval": 30,
        "keepalive_count_max": 4,
    }
    try:
        return await asyncio.wait_for(
            asyncssh.connect(address, target.port, client_factory=lambda: client, **options), timeout
        )
    except asyncssh.HostKeyNotVerifiable:
        if client.offered is None:
            raise
        raise _Mismatch(client.offered) from None
    except asyncssh.KeyExchangeFailed:
        # The machine no longer has a key of the pinned type at all: that is a change too.
        raise _Mismatch(await _scan(address, target.port, timeout)) from None


def _note_offered(target: Target, key: asyncssh.SSHKey, *, changed: bool) -> tuple[str, str]:
    line, fingerprint = keys.host_key_line(key), keys.fingerprint(key)
    if target.on_offered is not None:
        target.on_offered(line, fingerprint, changed)
    return line, fingerprint


def _host_key_changed(target: Target, offered_fingerprint: str) -> HostKeyChanged:
    return HostKeyChanged(
        f"the host key of {target.label} ({target.where}) changed: pinned {target.pinned_fingerprint}, "
        f"now offered {offered_fingerprint}. Nothing is run on it until a person checks and accepts the new key.",
        pinned_fingerprint=target.pinned_fingerprint,
        offered_fingerprint=offered_fingerprint,
        hint="if the machine was reinstalled or its keys regenerated, compare the new fingerprint with "
        "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console and accept it on the node page; "
        "otherwise someone may be intercepting the connection",
    )


def scan_host_key(target: Target, *, timeout: float | None = None) -> tuple[str, str]:
    """The host key the machine offers: (OpenSSH public key line, "SHA256:…")."""
    timeout = timeout or connect_timeout()
    address = _destination(target.host, target.port)
    try:
        key = _call(_scan(address, target.port, timeout))
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        raise _unreachable(target, exc, timeout) from exc
    return keys.host_key_line(key), keys.fingerprint(key)


def connect(target: Target, *, timeout: float | None = None) -> Connection:
    """Open an SSH connection to ``target``; use as ``with connect(target) as conn:``."""
    timeout = timeout or connect_timeout()
    if target.pinned_line and target.offered_line and target.offered_line != target.pinned_line:
        # A change was seen before: stop here until a person decides (no connection at all).
        raise _host_key_changed(target, target.offered_fingerprint)
    address = _destination(target.host, target.port)
    if not target.pinned_line:
        try:
            key = _call(_scan(address, target.port, timeout))
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise _unreachable(target, exc, timeout) from exc
        line, fingerprint = _note_offered(target, key, changed=False)
        raise HostKeyUnknown(
            f"{target.label} ({target.where}) offers host key {fingerprint}, which no one has accepted yet",
            fingerprint=fingerprint,
            key=line,
            hint="compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the machine's console, "
            "then accept it on the node page",
        )
    _load_credentials(target)
    try:
        conn = _call(_open(target, address, timeout))
    except _Mismatch as mismatch:
        _, fingerprint = _note_offered(target, mismatch.key, changed=True)
        raise _host_key_changed(target, fingerprint) from None
    except asyncssh.PermissionDenied as exc:
        raise _auth_failed(target) from exc
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        raise _unreachable(target, exc, timeout) from exc
    return Connection(conn, target)


# --- remote command wrapping ---------------------------------------------------------------

# Runs as root (or the SSH user): refuses a job that is still alive, starts the command in a
# new session/process group, records the group id, waits, and removes its own pid file.
_WRAPPER = r"""
exec 2>&1
pidfile=$1; cmd=$2
if [ -n "$pidfile" ]; then
  mkdir -p "${pidfile%/*}" || exit 125
  old=$(cat "$pidfile" 2>/dev/null)
  if [ -n "$old" ] && kill -0 -"$old" 2>/dev/null; then printf '\036kubeboard-busy %s\n' "$old"; exit 125; fi
fi
setsid sh -c '
  if [ -n "$1" ]; then echo $$ > "$1.tmp" && mv -f "$1.tmp" "$1"; fi
  printf "\036kubeboard-pgid %s\n" $$
  exec sh -c "$2" </dev/null 2>&1' kubeboard-job "$pidfile" "$cmd" &
child=$!
wait $child 2>/dev/null
rc=$?
if [ -n "$pidfile" ] && [ "$(cat "$pidfile" 2>/dev/null)" = "$child" ]; then rm -f "$pidfile"; fi
exit $rc
"""

_KILL_GROUP = r"""
pg=$1; grace=$2
kill -TERM -"$pg" 2>/dev/null || exit 3
i=0
while kill -0 -"$pg" 2>/dev/null; do
  i=$((i+1)); [ $i -gt $((grace*10)) ] && break; sleep 0.1
done
kill -KILL -"$pg" 2>/dev/null
exit 0
"""

_JOB_PGID = r"""
old=$(cat "$1" 2>/dev/null)
if [ -n "$old" ] && kill -0 -"$old" 2>/dev/null; then echo "$old"; exit 0; fi
exit 3
"""


def _sh(script: str, *args: str) -> str:
    return "sh -c " + shlex.quote(script) + " kubeboard " + " ".join(shlex.quote(a) for a in args)


def job_pid_file(job: str) -> str:
    if not _JOB_NAME.match(job):
        raise ValueError(f"invalid job name {job!r}: letters, digits, '.', '_' and '-' only")
    return f"{JOBS_DIR}/{job}.pid"


@dataclass
class _RunState:
    lines: queue.Queue
    pgid: int | None = None
    busy_pgid: int | None = None
    process: asyncssh.SSHClientProcess | None = None
    pgid_known: asyncio.Event | None = None
    abandoned: bool = False  # the caller stopped listening (it raised): drop further output


_DONE = object()  # the last item of a run's queue: the command finished (or failed)


class Connection:
    """An open SSH connection to one machine. Safe to share between threads."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: Target) -> None:
        self._conn = conn
        self.target = target
        self.is_root = target.user == "root"
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_lock: asyncio.Lock | None = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        async def close() -> None:
            if self._sftp is not None:
                self._sftp.exit()
            self._conn.close()
            await self._conn.wait_closed()

        _call(close())

    def _privileged(self, command: str, root: bool) -> str:
        return f"sudo -n -- {command}" if root and not self.is_root else command

    # -- commands ------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        on_line: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        timeout: float | None = None,
        job: str | None = None,
        root: bool = True,
    ) -> CommandResult:
        """Run ``command`` (a shell command line) and wait for it; see the module docstring."""
        if job is not None and not (root or self.is_root):
            raise ValueError("a job runs as root (its pid file lives in /run/kubeboard/jobs)")
        pid_file = job_pid_file(job) if job is not None else ""
        wrapped = self._privileged(_sh(_WRAPPER, pid_file, command), root)
        # asyncio.Event binds to a loop only when awaited, so it may be made here.
        state = _RunState(lines=queue.Queue(maxsize=QUEUE_BATCHES), pgid_known=asyncio.Event())
        loop = _event_loop()
        started = time.monotonic()
        deadline = started + timeout if timeout else None
        future = asyncio.run_coroutine_threadsafe(self._execute(wrapped, state), loop)
        stopping: str | None = None  # "cancel" | "timeout"
        try:
            while True:
                try:
                    batch = state.lines.get(timeout=0.05)
                except queue.Empty:
                    batch = []
                if batch is _DONE:
                    break
                for line in batch:
                    if on_line is not None:
                        on_line(line)
                if stopping is None:
                    if cancel is not None and cancel.is_set():
                        stopping = "cancel"
                    elif deadline is not None and time.monotonic() > deadline:
                        stopping = "timeout"
                    if stopping:
                        asyncio.run_coroutine_threadsafe(self._stop(state, root), loop)
        except BaseException:
            # Ctrl-C in a management command, or on_line raised: never leave the command running.
            state.abandoned = True
            if not future.done():
                asyncio.run_coroutine_threadsafe(self._stop(state, root), loop).result()
            raise
        duration = time.monotonic() - started
        try:
            exit_status, signal = future.result()
        except (OSError, asyncssh.Error) as exc:
            raise Unreachable(
                f"the connection to {self.target.label} ({self.target.where}) broke while a command ran: {exc}",
                hint="the command may still be running on the machine; check the machine and retry",
            ) from exc
        if exit_status is None and signal is None and stopping is None:
            raise Unreachable(
                f"the connection to {self.target.label} ({self.target.where}) closed before the command finished",
                hint="the command may still be running on the machine; check the machine and retry",
            )
        if state.busy_pgid is not None:
            raise JobAlreadyRunning(
                f"job {job} is still running on {self.target.label} as process group {state.busy_pgid}",
                pgid=state.busy_pgid,
                hint="wait for it to finish, or stop it before starting it again",
            )
        if stopping == "cancel":
            raise CommandCancelled(
                f"cancelled; the command's process group on {self.target.label} was stopped"
                + (f" (pgid {state.pgid})" if state.pgid else "")
            )
        if stopping == "timeout":
            raise CommandTimeout(
                f"the command did not finish within {duration_words(timeout)} on {self.target.label}; its process "
                "group was stopped",
                hint="the machine may be slow or stuck; look at the output above",
            )
        if state.pgid is None and exit_status:
            if root and not self.is_root:
                raise SudoFailed(
                    f"{self.target.user} on {self.target.label} could not run the command as root (exit {exit_status})",
                    hint=f"allow {self.target.user} passwordless sudo (a NOPASSWD rule) or connect as root",
                )
            raise SSHError(
                f"the command could not be started on {self.target.label} (exit {exit_status})",
                hint="Kubeboard needs sh and setsid (util-linux) on the machine; see the output above",
            )
        return CommandResult(exit_status=exit_status, signal=signal, duration=duration)

    async def _execute(self, command: str, state: _RunState) -> tuple[int | None, str | None]:
        try:
            process = await self._conn.create_process(command, encoding=None, stderr=asyncssh.STDOUT)
            state.process = process
            process.stdin.write_eof()
            splitter = LineSplitter()
            while True:
                chunk = await process.stdout.read(READ_BYTES)
                if not chunk:
                    break
                await self._deliver(state, splitter.feed(chunk))
            await self._deliver(state, splitter.close())
            await process.wait()
        finally:
            state.pgid_known.set()
            await self._deliver(state, _DONE)
        signal = process.exit_signal[0] if process.exit_signal else None
        return process.exit_status, signal

    async def _deliver(self, state: _RunState, batch) -> None:
        """Hand a batch of lines (or _DONE) to the caller's thread; wait while its queue is full."""
        if batch is not _DONE:
            batch = [line for line in batch if not (line.startswith(_MARK) and self._marker(state, line))]
            if not batch:
                return
        while not state.abandoned:
            try:
                state.lines.put_nowait(batch)
                return
            except queue.Full:
                await asyncio.sleep(0.01)

    @staticmethod
    def _marker(state: _RunState, line: str) -> bool:
        """Note the wrapper's own lines (process group id, busy job); True if it was one."""
        kind, _, value = line[len(_MARK) :].partition(" ")
        if kind == "pgid" and value.isdigit():
            state.pgid = int(value)
            state.pgid_known.set()
            return True
        if kind == "busy" and value.isdigit():
            state.busy_pgid = int(value)
            return True
        return False

    async def _stop(self, state: _RunState, root: bool) -> None:
        """Kill the command's process group (TERM, then KILL after a grace period)."""
        if state.pgid_known is not None:
            try:
                await asyncio.wait_for(state.pgid_known.wait(), 10)
            except TimeoutError:
                pass
        if state.pgid is not None:
            try:
                await self._conn.run(
                    self._privileged(_sh(_KILL_GROUP, str(state.pgid), str(KILL_GRACE_SECONDS)), root),
                    check=False,
                    timeout=KILL_GRACE_SECONDS + 15,
                )
                return
            except (TimeoutError, OSError, asyncssh.Error):
                pass
        if state.process is not None:
            state.process.close()

    def _quiet(self, command: str, *, root: bool = True, input: bytes | None = None) -> asyncssh.SSHCompletedProcess:
        async def run() -> asyncssh.SSHCompletedProcess:
            return await self._conn.run(self._privileged(command, root), check=False, encoding=None, input=input)

        try:
            return _call(run())
        except (OSError, asyncssh.Error) as exc:
            raise Unreachable(f"the connection to {self.target.label} broke: {exc}") from exc

    def output(self, command: str, *, root: bool = True) -> tuple[int | None, str]:
        """A short read-only command's exit status and standard output alone (what a login shell's
        startup files print goes to standard error and is left out)."""
        result = self._quiet(command, root=root)
        return result.exit_status, (result.stdout or b"").decode(errors="replace")

    def job_pgid(self, job: str) -> int | None:
        """The process group of ``job`` if it is alive on the machine."""
        result = self._quiet(_sh(_JOB_PGID, job_pid_file(job)))
        output = (result.stdout or b"").decode(errors="replace").strip()
        return int(output) if result.exit_status == 0 and output.isdigit() else None

    def job_running(self, job: str) -> bool:
        return self.job_pgid(job) is not None

    def kill_job(self, job: str) -> bool:
        """Stop ``job``'s whole process group; False if it was not running."""
        pgid = self.job_pgid(job)
        if pgid is None:
            return False
        self._quiet(_sh(_KILL_GROUP, str(pgid), str(KILL_GRACE_SECONDS)))
        self._quiet(_sh('[ "$(cat "$1" 2>/dev/null)" = "$2" ] && rm -f "$1"; exit 0', job_pid_file(job), str(pgid)))
        return True

    # -- files ---------------------------------------------------------------------------

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        if self._sftp_lock is None:
            self._sftp_lock = asyncio.Lock()
        async with self._sftp_lock:
            if self._sftp is None:
                self._sftp = await self._conn.start_sftp_client()
            return self._sftp

    def read_file(self, path: str) -> bytes:
        if not self.is_root:
            result = self._quiet(f"cat -- {shlex.quote(path)}")
            if result.exit_status != 0:
                raise RemoteFileError(
                    f"cannot read {path} on {self.target.label}: {_text(result.stdout, result.stderr)}"
                )
            return result.stdout

        async def read() -> bytes:
            sftp = await self._sftp_client()
            async with sftp.open(path, "rb") as handle:
                data = await handle.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise RemoteFileError(f"{path} on {self.target.label} is larger than {MAX_FILE_BYTES} bytes")
            return data

        try:
            return _call(read())
        except asyncssh.SFTPError as exc:
            raise RemoteFileError(f"cannot read {path} on {self.target.label}: {exc.reason}") from exc

    def write_file(self, path: str, data: bytes, *, mode: int = 0o600, dir_mode: int | None = None) -> None:
        """Write atomically: a temporary file beside it, its mode set, then renamed over it. Missing
        directories are made with ``dir_mode`` when given (0755 for /etc's, which other programs
        read), else as the session's umask has it."""
        directory, name = os.path.split(path)
        if not directory.startswith("/") or not name:
            raise ValueError(f"write_file needs an absolute file path, got {path!r}")
        temp = f"{directory}/.{name}.kubeboard-{uuid.uuid4().hex[:12]}"
        if not self.is_root:
            script = (
                '(umask "$5"; mkdir -p "$1") && umask 077 && cat > "$2" && chmod "$3" "$2" && mv -f "$2" "$4" '
                '|| { rm -f "$2"; exit 1; }'
            )
            umask = "077" if dir_mode is None else f"{0o777 & ~dir_mode:03o}"
            result = self._quiet(_sh(script, directory, temp, f"{mode:o}", path, umask), input=data)
            if result.exit_status != 0:
                raise RemoteFileError(
                    f"cannot write {path} on {self.target.label}: {_text(result.stdout, result.stderr)}"
                )
            return

        async def write() -> None:
            sftp = await self._sftp_client()
            attrs = asyncssh.SFTPAttrs() if dir_mode is None else asyncssh.SFTPAttrs(permissions=dir_mode)
            await sftp.makedirs(directory, attrs, exist_ok=True)

            async def send() -> None:
                async with sftp.open(temp, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as handle:
                    await handle.write(data)
                    try:
                        await handle.fsync()
                    except asyncssh.SFTPOpUnsupported:
                        pass

            await _place(sftp, send, temp, path, mode)

        try:
            _call(write())
        except asyncssh.SFTPError as exc:
            raise RemoteFileError(f"cannot write {path} on {self.target.label}: {exc.reason}") from exc

    def put_file(self, local_path: str, path: str, *, mode: int = 0o644) -> int:
        """Stream a local file to ``path`` over SFTP as the login user (never read whole: artifact
        sets hold binaries of 100 MB), beside it first, then renamed over it. The directory must be
        writable by that user. Returns the bytes sent."""
        directory, name = os.path.split(path)
        if not directory.startswith("/") or not name:
            raise ValueError(f"put_file needs an absolute file path, got {path!r}")
        temp = f"{directory}/.{name}.kubeboard-{uuid.uuid4().hex[:12]}"
        size = os.path.getsize(local_path)

        async def put() -> None:
            sftp = await self._sftp_client()

            async def send() -> None:
                # OpenSSH's sftp-server closes the session on a message over 256 KiB (header included).
                await sftp.put(local_path, temp, block_size=128 * 1024, max_requests=64)

            await _place(sftp, send, temp, path, mode)

        try:
            _call(put())
        except asyncssh.SFTPError as exc:
            raise RemoteFileError(f"cannot write {path} on {self.target.label}: {exc.reason}") from exc
        except OSError as exc:
            raise Unreachable(f"the connection to {self.target.label} broke while {name} was sent: {exc}") from exc
        return size

    def exists(self, path: str) -> bool:
        if not self.is_root:
            return self._quiet(f"test -e {shlex.quote(path)}").exit_status == 0

        async def exists() -> bool:
            return await (await self._sftp_client()).exists(path)

        return _call(exists())


async def _place(sftp: asyncssh.SFTPClient, send, temp: str, path: str, mode: int) -> None:
    """``send()`` fills ``temp`` beside ``path``; then its mode is set and it is renamed over
    ``path``, so a reader never sees half a file. On any failure ``temp`` is removed."""
    try:
        await send()
        await sftp.chmod(temp, mode)
        await sftp.posix_rename(temp, path)
    except BaseException:
        try:
            await sftp.remove(temp)
        except asyncssh.SFTPError:
            pass
        raise


def _text(*parts: bytes | None) -> str:
    return " ".join((p or b"").decode(errors="replace").strip() for p in parts if p).strip() or "no output"

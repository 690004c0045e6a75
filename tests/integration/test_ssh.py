"""The SSH transport against a real OpenSSH sshd on loopback (remote/ssh.py, with targets from nodes/connect.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time

import pytest

from audit.models import AuditEvent
from nodes import services
from nodes.connect import connect, scan_host_key
from nodes.models import Node
from remote import ssh
from tests.conftest import require_or_skip
from tests.factories import make_cluster
from tests.support.services import ServiceUnavailable, free_port, local_user, start_sshd

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def cluster():
    return make_cluster("c1")


def make_node(server, cluster, **fields) -> Node:
    values = {"name": "m1", "address": server.host, "ssh_port": server.port, "ssh_user": "root"}
    values.update(fields)
    return Node.objects.create(cluster=cluster, **values)


def pin(node: Node) -> Node:
    """What a person does on first contact: look at the offered fingerprint and accept it."""
    with pytest.raises(ssh.HostKeyUnknown) as info:
        connect(node)
    return services.accept_host_key(node, user=None, fingerprint=info.value.fingerprint)


@pytest.fixture
def node(sshd, cluster):
    key = services.ensure_cluster_key(cluster)
    sshd.authorize(key.public_key)
    return pin(make_node(sshd, cluster))


def remote_processes(pattern: str) -> list[str]:
    """The machine's process table (sshd runs on this host), filtered like `ps | grep`."""
    out = subprocess.run(["ps", "-eo", "pid,pgid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if pattern in line and "ps -eo" not in line]


@contextlib.contextmanager
def leftover_job_killed(conn, job: str):
    """A failing test must not leave its remote job running."""
    try:
        yield
    finally:
        conn.kill_job(job)


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# --- host keys -----------------------------------------------------------------------------


def test_first_contact_offers_the_host_key_with_ssh_keygen_fingerprint_and_connects_nothing(sshd, cluster):
    node = make_node(sshd, cluster)
    with pytest.raises(ssh.HostKeyUnknown) as info:
        connect(node)
    assert info.value.fingerprint == sshd.host_key_fingerprint()
    assert info.value.key.startswith("ssh-ed25519 ")
    assert "accept" in info.value.hint
    node.refresh_from_db()
    assert node.host_key_state == Node.HostKeyState.OFFERED
    assert node.offered_host_key_fingerprint == sshd.host_key_fingerprint()
    assert not node.ssh_host_key
    assert AuditEvent.objects.filter(action="node.host_key_offered").count() == 1
    # Asking again records nothing new.
    with pytest.raises(ssh.HostKeyUnknown):
        connect(node)
    assert AuditEvent.objects.filter(action="node.host_key_offered").count() == 1


def test_scan_host_key_matches_ssh_keygen(sshd, cluster):
    line, fingerprint = scan_host_key(make_node(sshd, cluster))
    assert fingerprint == sshd.host_key_fingerprint()
    with open(f"{sshd.host_key}.pub") as handle:
        assert line.split()[:2] == handle.read().split()[:2]


def test_accepting_needs_the_offered_fingerprint(sshd, cluster):
    node = make_node(sshd, cluster)
    with pytest.raises(ssh.HostKeyUnknown):
        connect(node)
    with pytest.raises(services.NodeStateError, match="does not match"):
        services.accept_host_key(node, user=None, fingerprint="SHA256:" + "A" * 43)
    node.refresh_from_db()
    assert not node.ssh_host_key


@pytest.mark.services
def test_changed_host_key_stops_every_connection_until_accepted(tmp_path, cluster):
    try:
        server = start_sshd(tmp_path / "sshd")
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    try:
        key = services.ensure_cluster_key(cluster)
        server.authorize(key.public_key)
        node = pin(make_node(server, cluster))
        old = server.host_key_fingerprint()
        with connect(node) as conn:
            assert conn.run("true").exit_status == 0

        server.restart(new_host_key=True)
        new = server.host_key_fingerprint()
        assert new != old
        with pytest.raises(ssh.HostKeyChanged) as info:
            connect(node)
        assert (info.value.pinned_fingerprint, info.value.offered_fingerprint) == (old, new)
        assert old in str(info.value) and new in str(info.value)
        node.refresh_from_db()
        assert node.host_key_state == Node.HostKeyState.CHANGED
        changed = AuditEvent.objects.get(action="node.host_key_changed")
        assert changed.details == {"pinned_fingerprint": old, "offered_fingerprint": new}

        # The node stays stopped without even connecting: with sshd down it is still
        # "host key changed", not "unreachable".
        server.stop()
        with pytest.raises(ssh.HostKeyChanged):
            connect(node)
        server.start()

        services.accept_host_key(node, user=None, fingerprint=new)
        with connect(node) as conn:
            assert conn.run("true").exit_status == 0
        accepted = AuditEvent.objects.filter(action="node.host_key_accepted").order_by("id").last()
        assert accepted.details == {"fingerprint": new, "replaced_fingerprint": old}
    finally:
        server.stop()


# --- credentials ---------------------------------------------------------------------------


def test_cluster_key_authenticates_and_runs_as_root(node):
    lines = []
    with connect(node) as conn:
        result = conn.run("id -u; echo hello", on_line=lines.append)
    assert result.exit_status == 0 and result.signal is None
    assert lines == ["0", "hello"]


def test_a_connection_prefers_aes_gcm_for_fast_artifact_pushes(node):
    # The real sshd offers chacha20-poly1305 too (asyncssh's own first choice, slower here).
    with connect(node) as conn:
        conn.run("true")
        assert conn._conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        assert conn._conn.get_extra_info("recv_cipher") == "aes128-gcm@openssh.com"


def test_pasted_private_key_with_passphrase(sshd, cluster, tmp_path):
    key_file = tmp_path / "id_ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "pass phrase", "-f", str(key_file)], check=True)
    sshd.authorize(open(f"{key_file}.pub").read())
    node = pin(
        make_node(
            sshd,
            cluster,
            credential=Node.Credential.PRIVATE_KEY,
            ssh_private_key=key_file.read_text(),
            ssh_key_passphrase="pass phrase",
        )
    )
    lines = []
    with connect(node) as conn:
        conn.run("echo pasted", on_line=lines.append)
    assert lines == ["pasted"]


def test_wrong_key_is_refused_with_the_key_and_user_named(sshd, cluster):
    services.ensure_cluster_key(cluster)  # generated but never added to authorized_keys
    node = pin(make_node(sshd, cluster))
    with pytest.raises(ssh.AuthenticationFailed) as info:
        connect(node)
    fingerprint = cluster.ssh_key.fingerprint
    assert f"refused the cluster's key {fingerprint} for user root" in str(info.value)
    assert "authorized_keys" in info.value.hint


@pytest.mark.services
def test_password_login_and_sudo_needed_for_root(tmp_path, cluster):
    try:
        server = start_sshd(tmp_path / "sshd", password_auth=True)
        user_context = local_user()
        name, password = user_context.__enter__()
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    try:
        node = pin(
            make_node(server, cluster, ssh_user=name, credential=Node.Credential.PASSWORD, ssh_password=password)
        )
        lines = []
        with connect(node) as conn:
            assert conn.run("whoami", on_line=lines.append, root=False).exit_status == 0
            # Commands run as root through `sudo -n`; this user has no sudo rights.
            with pytest.raises(ssh.SudoFailed) as info:
                conn.run("id -u")
        assert lines == [name]
        assert "sudo" in info.value.hint

        Node.objects.filter(pk=node.pk).update(ssh_password="wrong password")
        with pytest.raises(ssh.AuthenticationFailed, match=f"refused the password for user {name}"):
            connect(node)
    finally:
        user_context.__exit__(None, None, None)
        server.stop()


# --- reaching the machine ------------------------------------------------------------------


def test_closed_port_is_unreachable(cluster):
    node = Node.objects.create(cluster=cluster, name="m1", address="127.0.0.1", ssh_port=free_port())
    with pytest.raises(ssh.Unreachable) as info:
        connect(node)
    assert f"127.0.0.1:{node.ssh_port} refused the connection" in str(info.value)


def test_silent_port_is_unreachable_within_the_timeout(cluster):
    with socket.socket() as listener:  # accepts TCP, never says a word of SSH
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        node = Node.objects.create(cluster=cluster, name="m1", address="127.0.0.1", ssh_port=listener.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(ssh.Unreachable, match="within 1 second"):
            connect(node, timeout=1)
        assert time.monotonic() - started < 5


def test_guard_refuses_a_documentation_address_before_any_packet(cluster):
    node = Node.objects.create(cluster=cluster, name="m1", address="192.0.2.1")
    with pytest.raises(ssh.GuardRefused, match="refused by the network guard") as info:
        scan_host_key(node)
    assert "nothing was sent" in info.value.hint
    with pytest.raises(ssh.GuardRefused):
        connect(node)
    node.refresh_from_db()
    assert node.host_key_state == Node.HostKeyState.UNKNOWN


# --- output --------------------------------------------------------------------------------


def test_output_streams_line_by_line_in_order_with_stderr_merged(node):
    arrivals = []
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.4; done"
    with connect(node) as conn:
        started = time.monotonic()
        result = conn.run(script, on_line=lambda line: arrivals.append((line, time.monotonic() - started)))
    assert [line for line, _ in arrivals] == ["out1", "err1", "out2", "err2", "out3", "err3"]
    # Lines arrived as the command printed them, spread over its 0.8 s of sleeps between the
    # first and the last pair; buffered output would arrive all at once at the end.
    assert arrivals[4][1] - arrivals[0][1] > 0.5
    assert arrivals[0][1] < result.duration - 0.5


def test_invalid_utf8_ansi_and_a_5mb_line_are_capped_not_fatal(node):
    lines = []
    script = (
        r"printf 'bad \377\376 bytes \033[31mred\033[0m\n'; "
        "head -c 5000000 /dev/zero | tr '\\0' a; echo; echo after"
    )
    with connect(node) as conn:
        assert conn.run(script, on_line=lines.append).exit_status == 0
    assert len(lines) == 3
    assert lines[0] == "bad \ufffd\ufffd bytes \x1b[31mred\x1b[0m"
    assert lines[1].startswith("a" * ssh.MAX_LINE_BYTES)
    assert lines[1].endswith(f"[line cut: {5_000_000 - ssh.MAX_LINE_BYTES} more bytes]")
    assert len(lines[1]) < ssh.MAX_LINE_BYTES + 100
    assert lines[2] == "after"


def test_exit_status_is_reported(node):
    with connect(node) as conn:
        assert conn.run("exit 3").exit_status == 3


# --- cancel, timeout, jobs -----------------------------------------------------------------


def test_cancel_kills_the_remote_process_group(node):
    cancel = threading.Event()
    lines = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "started":
            cancel.set()

    with connect(node) as conn:
        with pytest.raises(ssh.CommandCancelled):
            conn.run("sleep 3017 & sleep 3018 & echo started; wait", on_line=on_line, cancel=cancel)
    assert lines == ["started"]
    assert wait_for(lambda: not remote_processes("sleep 301")), remote_processes("sleep 301")


def test_timeout_stops_the_command(node):
    with connect(node) as conn:
        with pytest.raises(ssh.CommandTimeout, match="within 1 second"):
            conn.run("sleep 3027", timeout=1)
    assert wait_for(lambda: not remote_processes("sleep 3027"))


def test_a_job_survives_a_lost_connection_and_is_found_and_killed_from_another(node):
    job = "test-job"
    outcome: dict = {}
    conn1 = connect(node)

    def long_job() -> None:
        try:
            outcome["result"] = conn1.run("echo begun; sleep 3031", job=job, on_line=lambda line: None)
        except ssh.SSHError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=long_job)
    worker.start()
    with connect(node) as conn2, leftover_job_killed(conn2, job):
        assert wait_for(lambda: conn2.job_running(job))
        # The "worker" dies: its connection goes away, the remote job keeps running.
        conn1.close()
        worker.join(10)
        assert isinstance(outcome.get("error"), ssh.Unreachable)
        assert remote_processes("sleep 3031")
        assert conn2.job_running(job)
        # A new attempt is refused while the leftover runs (never two at once) ...
        with pytest.raises(ssh.JobAlreadyRunning) as info:
            conn2.run("echo second", job=job)
        assert info.value.pgid == conn2.job_pgid(job)
        # ... until it is killed.
        assert conn2.kill_job(job) is True
        assert not conn2.job_running(job)
        assert not os.path.exists(f"{ssh.JOBS_DIR}/{job}.pid")
        assert conn2.kill_job(job) is False
        lines = []
        assert conn2.run("echo second", job=job, on_line=lines.append).exit_status == 0
        assert lines == ["second"]
    assert wait_for(lambda: not remote_processes("sleep 3031"))


@pytest.mark.django_db(transaction=True)
def test_connections_from_several_threads_run_at_once(node, tmp_path):
    """Each command waits until all five have started: run one after another, the first
    would wait alone until it gives up."""
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    script = (
        f"touch {arrived}/$$; for i in $(seq 200); do "
        f'[ "$(ls {arrived} | wc -l)" -ge 5 ] && echo together && exit 0; sleep 0.1; done; echo alone'
    )
    outputs: dict[int, list[str]] = {}

    def work(index: int) -> None:
        lines: list[str] = []
        with connect(node) as conn:
            conn.run(script, on_line=lines.append)
        outputs[index] = lines

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outputs == {i: ["together"] for i in range(5)}


# --- files ---------------------------------------------------------------------------------


def test_write_file_is_atomic_with_mode_and_parent_dirs(node, tmp_path):
    target = tmp_path / "etc" / "kubernetes" / "pki" / "ca.key"
    with connect(node) as conn:
        assert not conn.exists(str(target))
        conn.write_file(str(target), b"first\n", mode=0o600)
        first_inode = target.stat().st_ino
        conn.write_file(str(target), b"second\n", mode=0o640)
        assert conn.read_file(str(target)) == b"second\n"
        assert conn.exists(str(target))
    assert target.read_bytes() == b"second\n"
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    # Replaced by rename (a new inode), never rewritten in place; no temporary file left.
    assert target.stat().st_ino != first_inode
    assert sorted(p.name for p in target.parent.iterdir()) == ["ca.key"]
    # Directories other programs read (/etc/modules-load.d, /etc/containerd) are made 0755 when asked.
    shared = tmp_path / "etc" / "containerd" / "certs.d" / "hosts.toml"
    with connect(node) as conn:
        conn.write_file(str(shared), b"x\n", mode=0o644, dir_mode=0o755)
    for directory in (shared.parent, shared.parent.parent):
        assert oct(directory.stat().st_mode & 0o777) == oct(0o755), directory


def test_put_file_streams_a_large_file_and_replaces_by_rename(node, tmp_path):
    """Artifact sets are pushed with put_file: more than one SFTP message (sftp-server drops a
    session on one over 256 KiB), the mode set, the old file replaced by rename, no temp left."""
    local = tmp_path / "kubeadm"
    local.write_bytes(os.urandom(700 * 1024))
    target = tmp_path / "remote" / "kubeadm"
    target.parent.mkdir()
    target.write_bytes(b"old")
    old_inode = target.stat().st_ino
    with connect(node) as conn:
        assert conn.put_file(str(local), str(target), mode=0o755) == 700 * 1024
    assert target.read_bytes() == local.read_bytes()
    assert oct(target.stat().st_mode & 0o777) == oct(0o755)
    assert target.stat().st_ino != old_inode
    assert sorted(p.name for p in target.parent.iterdir()) == ["kubeadm"]
    with connect(node) as conn, pytest.raises(ssh.RemoteFileError, match="cannot write"):
        conn.put_file(str(local), "/proc/kubeboard-cannot-be-here", mode=0o644)


def test_read_missing_file_is_a_clear_error(node, tmp_path):
    with connect(node) as conn:
        with pytest.raises(ssh.RemoteFileError, match="cannot read .*missing"):
            conn.read_file(str(tmp_path / "missing"))


# --- a user with sudo ----------------------------------------------------------------------


def test_non_root_user_runs_as_root_through_sudo_jobs_and_files(sshd, cluster, tmp_path):
    try:
        user_context = local_user(sudo=True)
        name, _ = user_context.__enter__()
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    try:
        sshd.authorize(services.ensure_cluster_key(cluster).public_key)
        node = pin(make_node(sshd, cluster, ssh_user=name))
        with connect(node) as conn:
            lines = []
            conn.run("id -u; echo done", on_line=lines.append)
            conn.run("whoami", on_line=lines.append, root=False)
            assert lines == ["0", "done", name]

            # A cancelled job run through sudo loses its whole process group too.
            cancel = threading.Event()
            with leftover_job_killed(conn, "sudo-job"):
                with pytest.raises(ssh.CommandCancelled):
                    conn.run(
                        "sleep 3041 & echo started; wait",
                        job="sudo-job",
                        cancel=cancel,
                        on_line=lambda line: cancel.set(),
                    )
            assert wait_for(lambda: not remote_processes("sleep 3041"))
            assert not conn.job_running("sudo-job")

            # Files are written as root (sudo), atomically, with the requested mode.
            target = tmp_path / "pki" / "sa.key"
            conn.write_file(str(target), b"secret\n", mode=0o600)
            assert conn.read_file(str(target)) == b"secret\n" and conn.exists(str(target))
            shared = tmp_path / "etc" / "modules-load.d" / "k8s.conf"
            conn.write_file(str(shared), b"overlay\n", mode=0o644, dir_mode=0o755)
        for directory in (shared.parent, shared.parent.parent):
            assert oct(directory.stat().st_mode & 0o777) == oct(0o755), directory
        assert oct(target.parent.stat().st_mode & 0o777) == oct(0o700)  # without dir_mode: the umask's 077
        assert (shared.stat().st_uid, oct(shared.stat().st_mode & 0o777)) == (0, oct(0o644))
        stat = target.stat()
        assert (stat.st_uid, oct(stat.st_mode & 0o777)) == (0, oct(0o600))
        assert sorted(p.name for p in target.parent.iterdir()) == ["sa.key"]
    finally:
        user_context.__exit__(None, None, None)

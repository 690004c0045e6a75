"""``manage.py node …`` and the machine check, against a real sshd on this host."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from nodes import services
from nodes.connect import connect
from nodes.models import Node
from remote import ssh
from tests.conftest import require_or_skip, session_cookie, team_of
from tests.factories import make_cluster
from tests.support.services import ServiceUnavailable, free_port, start_sshd
from tools.testbed.binaries import BinariesMissing, find_binaries

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def binaries_or_none():
    try:
        return find_binaries()
    except BinariesMissing:
        return None


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    # Sessions find the test bed's kubeadm/kubectl first on PATH, as on a provisioned machine.
    bins = binaries_or_none()
    extra = f"SetEnv PATH={bins}:/usr/sbin:/usr/bin:/sbin:/bin\n" if bins else ""
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"), extra_config=extra)
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield server
    server.stop()


def node_command(*args: str, stdin: str | None = None, monkeypatch=None) -> str:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command("node", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_add_list_and_show_key():
    cluster = make_cluster("c1")
    output = node_command("add", "c1", "cp1", "--address", "10.0.0.11", "--role", "control-plane")
    node = Node.objects.get()
    assert (node.name, node.address, node.ssh_port, node.ssh_user, node.role, node.credential) == (
        "cp1",
        "10.0.0.11",
        22,
        "root",
        "control-plane",
        "cluster-key",
    )
    public_key = cluster.ssh_key.public_key
    assert "Added machine cp1 (root@10.0.0.11:22, control plane) to cluster c1" in output
    assert public_key in output and "Next: manage.py node check c1 cp1" in output
    assert node_command("show-key", "c1").strip() == public_key
    listing = node_command("list", "c1").splitlines()
    assert listing[0].split() == [
        "NAME",
        "ADDRESS",
        "PORT",
        "USER",
        "ROLE",
        "CREDENTIAL",
        "HOST",
        "KEY",
        "STATUS",
        "CHECKED",
    ]
    assert listing[1].split() == [
        "cp1",
        "10.0.0.11",
        "22",
        "root",
        "control-plane",
        "cluster-key",
        "unknown",
        "new",
        "never",
    ]
    assert AuditEvent.objects.filter(action="node.added", actor_name="system").count() == 1


def test_show_key_generates_the_pair_once():
    make_cluster("c1")
    first = node_command("show-key", "c1")
    assert first.startswith("ssh-ed25519 ") and node_command("show-key", "c1") == first
    assert AuditEvent.objects.filter(action="cluster.ssh_key_generated").count() == 1


def test_bad_input_is_refused_with_each_problem_and_nothing_saved():
    make_cluster("c1")
    with pytest.raises(CommandError) as info:
        node_command("add", "c1", "Bad_Name", "--address", "10.0.0.300", "--port", "0", "--user", "Root")
    message = str(info.value)
    assert message.startswith("the machine was not added:")
    assert "--name: Use lower-case letters" in message
    assert "--address: '10.0.0.300' looks like an IP address but is not a valid one" in message
    assert "--port: Ensure this value is greater than or equal to 1." in message
    assert "--user: 'Root' is not a valid user name" in message
    assert not Node.objects.exists()
    with pytest.raises(CommandError, match="no cluster named 'nope' \\(clusters: c1\\)"):
        node_command("list", "nope")


def test_key_file_and_password_credentials(tmp_path, monkeypatch):
    make_cluster("c1")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with pytest.raises(CommandError, match="--key-file: This is a public key"):
        node_command("add", "c1", "w1", "--address", "10.0.0.21", "--key-file", f"{key}.pub")
    node_command("add", "c1", "w1", "--address", "10.0.0.21", "--key-file", str(key))
    assert Node.objects.get(name="w1").credential == "private-key"
    with pytest.raises(CommandError, match="expected the password on the first line of stdin"):
        node_command("add", "c1", "w2", "--address", "10.0.0.22", "--password-stdin", stdin="", monkeypatch=monkeypatch)
    node_command(
        "add",
        "c1",
        "w2",
        "--address",
        "10.0.0.22",
        "--user",
        "ubuntu",
        "--password-stdin",
        stdin="pw from stdin\n",
        monkeypatch=monkeypatch,
    )
    node = Node.objects.get(name="w2")
    assert node.credential == "password" and node.ssh_password.reveal() == "pw from stdin"
    assert "pw from stdin" not in str(list(AuditEvent.objects.values_list("details", flat=True)))


def test_a_machine_cannot_join_two_clusters():
    make_cluster("c1")
    make_cluster("c2")
    node_command("add", "c1", "cp1", "--address", "10.0.0.11")
    with pytest.raises(CommandError, match=r"already belongs to cluster c1 \(node cp1\)"):
        node_command("add", "c2", "cp1", "--address", "10.0.0.11")


def test_accept_host_key_must_match_what_the_machine_offers(sshd):
    make_cluster("c1")
    node_command("add", "c1", "m1", "--address", sshd.host, "--port", str(sshd.port))
    with pytest.raises(CommandError, match="does not match the key the machine offered"):
        node_command("accept-host-key", "c1", "m1", "--fingerprint", "SHA256:" + "x" * 43)
    output = node_command("accept-host-key", "c1", "m1", "--fingerprint", sshd.host_key_fingerprint())
    assert output.strip() == f"Pinned host key {sshd.host_key_fingerprint()} for c1/m1."
    assert Node.objects.get().host_key_state == Node.HostKeyState.PINNED


def test_check_of_an_unreachable_machine_exits_2():
    make_cluster("c1")
    port = free_port()
    node_command("add", "c1", "m1", "--address", "127.0.0.1", "--port", str(port))
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("node", "check", "c1", "m1", stdout=out)
    assert info.value.returncode == 2
    assert f"127.0.0.1:{port} refused the connection" in str(info.value)
    assert "reachable: no; logged in: no" in out.getvalue()
    node = Node.objects.get()
    assert node.status == Node.Status.UNREACHABLE and node.check_status == Node.CheckStatus.FAILED
    assert AuditEvent.objects.get(action="node.checked").details["reachable"] is False


def test_check_reports_this_machine_without_changing_it(sshd):
    cluster = make_cluster("c1")
    node_command("add", "c1", "m1", "--address", sshd.host, "--port", str(sshd.port), "--role", "control-plane")
    sshd.authorize(cluster.ssh_key.public_key)
    node_command("accept-host-key", "c1", "m1", "--fingerprint", sshd.host_key_fingerprint())
    # Something listens on 10259 (kube-scheduler's port) on this machine.
    with socket.socket() as busy:
        try:
            busy.bind(("127.0.0.1", 10259))
            busy.listen()
        except OSError:
            pass  # already in use by something else: still in use
        out = io.StringIO()
        with pytest.raises(CommandError) as info:
            call_command("node", "check", "c1", "m1", stdout=out)
    assert info.value.returncode == 1 and "problem(s) found" in str(info.value)
    text = out.getvalue()
    assert "… Connecting to root@127.0.0.1" in text and "… Checking the ports kubeadm needs" in text
    node = Node.objects.get()
    facts = node.facts
    assert facts["login"] and facts["complete"]
    assert facts["architecture"] == subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    assert facts["kernel"] == subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    assert 10259 in facts["ports"]["in_use"]
    assert "port 10259 (kube-scheduler) is already in use on the machine" in facts["problems"]
    if binaries_or_none():
        kubeadm = facts["binaries"]["kubeadm"]
        assert kubeadm["version"] == "v1.37.2" and kubeadm["skew"] is None
        assert re.search(r"kubeadm: /\S+/kubeadm v1\.37\.2 — fits", text)
    assert node.status == Node.Status.REACHABLE and node.check_status == Node.CheckStatus.DONE


@pytest.mark.django_db(transaction=True)
def test_check_runs_in_a_real_worker_and_the_page_follows_it(sshd, stack_factory, operator):
    import requests

    cluster = make_cluster("c1", team=team_of(operator))
    node = Node.objects.create(cluster=cluster, name="m1", address=sshd.host, ssh_port=sshd.port)
    sshd.authorize(services.ensure_cluster_key(cluster).public_key)
    with pytest.raises(ssh.HostKeyUnknown) as first:
        connect(node)
    services.accept_host_key(node, user=operator, fingerprint=first.value.fingerprint)

    stack = stack_factory()
    session = requests.Session()
    session.cookies.set("sessionid", session_cookie(operator), domain="127.0.0.1")
    detail = f"{stack.http}{node.get_absolute_url()}"
    page = session.get(detail, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{detail}check/",
        data={"csrfmiddlewaretoken": token},
        headers={"Referer": detail, "HX-Request": "true"},
        timeout=30,
    )
    assert response.status_code == 200 and 'hx-trigger="every 1s"' in response.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        panel = session.get(f"{detail}check/status/", timeout=30).text
        if "Last check" in panel:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"the check never finished:\n{panel}\n{stack.logs()}")
    assert 'id="check-facts"' in panel and "hx-trigger" not in panel
    node.refresh_from_db()
    assert node.check_status == Node.CheckStatus.DONE and node.facts["login"]
    actions = list(
        AuditEvent.objects.filter(action__startswith="node.check").order_by("id").values_list("action", "actor_name")
    )
    # the worker continues the request's actor (audit context carried in the task)
    assert actions == [("node.check_requested", operator.username), ("node.checked", operator.username)]

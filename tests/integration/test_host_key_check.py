"""Check machine on a machine whose host key no one has accepted yet, against a real sshd: the
machine answered, so it reads "host key not accepted yet" (never "unreachable" or "could not
log in"), and the panel the page polls carries the Accept button and the machine's badge, so
nothing needs a reload. After acceptance a clean check turns the badge to Reachable the same way.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from nodes import services
from nodes.models import Node
from tests.conftest import require_or_skip, team_of
from tests.factories import make_cluster
from tests.support.services import ServiceUnavailable, start_sshd

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield server
    server.stop()


def _polled_panel(user, node: Node) -> str:
    """What the page's poll receives once the check has ended."""
    client = Client()
    client.force_login(user)
    response = client.get(reverse("nodes:check-status", args=[node.cluster.name, node.name]))
    assert response.status_code == 200
    return response.content.decode()


def _out_of_band(panel: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*hx-swap-oob="true"[^>]*>.*?</\1>', panel, re.S)
    assert match, f"the polled panel does not update #{element_id} out of band:\n{panel}"
    return match.group(0)


def test_a_check_that_meets_an_unaccepted_host_key_says_so_and_offers_accept(sshd, operator):
    cluster = make_cluster("c1", team=team_of(operator))
    node = Node.objects.create(cluster=cluster, name="m1", address=sshd.host, ssh_port=sshd.port)
    sshd.authorize(services.ensure_cluster_key(cluster).public_key)

    report = services.run_check(node.pk)

    assert report["reachable"] and not report["login"] and report["host_key"] == "offered"
    node.refresh_from_db()
    assert node.status != Node.Status.UNREACHABLE
    assert node.status_badge == ("hostkey-offered", "Host key not accepted yet")
    panel = _polled_panel(operator, node)
    status = re.search(r'id="check-status">([^<]*)<', panel).group(1)
    assert status == "host key not accepted yet"
    assert "could not log in" not in panel and "Unreachable" not in panel and "unreachable" not in status
    host_key = _out_of_band(panel, "host-key")
    assert 'id="accept-host-key"' in host_key and sshd.host_key_fingerprint() in host_key
    assert "Host key not accepted yet" in _out_of_band(panel, "node-status")
    problems = re.search(r'id="check-problems">(.*?)</div>', panel, re.S).group(1)
    assert "`" not in problems, "no literal backticks"
    assert "<code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code>" in problems
    assert "node page" not in problems, "the user is on the node page"
    assert 'href="#host-key"' in problems
    page = Client()
    page.force_login(operator)
    assert "`" not in page.get(node.get_absolute_url()).content.decode().split('id="check"', 1)[1]

    services.accept_host_key(node, user=operator, fingerprint=sshd.host_key_fingerprint())
    report = services.run_check(node.pk)
    assert report["login"], report
    node.refresh_from_db()
    assert node.status == Node.Status.REACHABLE
    panel = _polled_panel(operator, node)
    assert ">Reachable</span>" in _out_of_band(panel, "node-status")
    assert "status-hostkey-pinned" in _out_of_band(panel, "host-key")
    assert 'id="accept-host-key"' not in panel


def test_a_machine_that_does_not_answer_is_still_unreachable(operator):
    from tests.support.services import free_port

    cluster = make_cluster("c1", team=team_of(operator))
    node = Node.objects.create(cluster=cluster, name="m1", address="127.0.0.1", ssh_port=free_port())
    services.run_check(node.pk)
    node.refresh_from_db()
    assert node.status == Node.Status.UNREACHABLE
    panel = _polled_panel(operator, node)
    assert re.search(r'id="check-status">([^<]*)<', panel).group(1) == "unreachable"
    assert "refused the connection" in panel and "`" not in panel.split('id="check-problems"', 1)[1]


def test_the_command_says_the_host_key_is_not_accepted_yet_and_how_to_accept_it(sshd):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    make_cluster("c1")
    call_command("node", "add", "c1", "m1", "--address", sshd.host, "--port", str(sshd.port), stdout=io.StringIO())
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("node", "check", "c1", "m1", stdout=out)
    assert info.value.returncode == 2 and str(info.value) == "c1/m1: host key not accepted yet"
    assert (
        f"next: accept it after comparing: manage.py node accept-host-key c1 m1 --fingerprint {sshd.host_key_fingerprint()}"
        in out.getvalue()
    )
    assert Node.objects.get().status == Node.Status.NEW

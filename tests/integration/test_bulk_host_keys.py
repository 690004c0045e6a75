"""Machines added together are checked together and their host keys accepted together, against
two real sshd (issue 18 item 3): the page shows each machine's own fingerprint next to its own box,
and each acceptance is the single accept's (fingerprint compared, permission checked, audited):
a box whose fingerprint is not what the machine offered pins nothing and says so."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from nodes import services
from nodes.models import Node
from tests.conftest import require_or_skip, team_of
from tests.factories import make_cluster
from tests.support.services import ServiceUnavailable, start_sshd

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """Two machines: two sshd with their own host keys."""
    servers = []
    try:
        for name in ("a", "b"):
            servers.append(start_sshd(tmp_path_factory.mktemp(f"sshd-{name}")))
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield servers
    for server in servers:
        server.stop()


def test_add_check_and_accept_several_machines(sshd, operator, make_user, django_capture_on_commit_callbacks):
    one, two = sshd
    cluster = make_cluster("c1", team=team_of(operator))
    client = Client()
    client.force_login(operator)
    listing = f"name,address,port\nm1,{one.host},{one.port}\nm2,{two.host},{two.port}\n"
    response = client.post(
        reverse("nodes:bulk-add", args=["c1"]),
        {"bulk-machines": listing, "bulk-ssh_user": "root", "bulk-ssh_port": 22, "bulk-role": "worker"},
    )
    assert response.status_code == 302, response.content.decode()
    for server in sshd:
        server.authorize(services.ensure_cluster_key(cluster).public_key)
    nodes = list(Node.objects.filter(cluster=cluster).order_by("name"))
    assert [n.name for n in nodes] == ["m1", "m2"]

    # A viewer sees the page but may neither check nor accept.
    viewer = Client()
    viewer.force_login(make_user("vic", role="viewer"))
    page = viewer.get(reverse("nodes:host-keys", args=["c1"])).content.decode()
    assert 'id="bulk-check-form"' not in page
    assert viewer.post(reverse("nodes:bulk-check", args=["c1"]), {"nodes": [n.pk for n in nodes]}).status_code == 403

    # Check both: each is the single check, queued for the worker with its own record.
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(reverse("nodes:bulk-check", args=["c1"]), {"nodes": [n.pk for n in nodes]})
    tasks = [callback for callback in queued if "request_check" in callback.__qualname__]
    assert response.status_code == 302 and len(tasks) == 2
    assert AuditEvent.objects.filter(action="node.check_requested").count() == 2
    page = client.get(reverse("nodes:host-keys", args=["c1"])).content.decode()
    assert 'hx-trigger="every 1s"' in page and 'id="bulk-accept"' not in page, "no boxes to tick while checks run"
    for node in nodes:
        services.run_check(node.pk)  # what the worker does with each queued check

    page = client.get(reverse("nodes:host-keys", args=["c1"])).content.decode()
    assert 'hx-trigger="every 1s"' not in page
    for node, server in zip(nodes, sshd, strict=True):
        row = re.search(rf'<tr id="machine-{node.name}">.*?</tr>', page, re.S).group(0)
        assert "host key not accepted yet" in row
        assert f'<code class="fingerprint" id="offered-{node.name}">{server.host_key_fingerprint()}</code>' in row
        assert f'value="{node.name} {server.host_key_fingerprint()}"' in row
    assert one.host_key_fingerprint() != two.host_key_fingerprint()

    # m1 with what it offered; m2 with a fingerprint it did not offer (a stale page, a swapped key).
    response = client.post(
        reverse("nodes:bulk-host-key-accept", args=["c1"]),
        {"accept": [f"m1 {one.host_key_fingerprint()}", f"m2 {one.host_key_fingerprint()}"]},
        follow=True,
    )
    text = response.content.decode()
    assert f"Host key {one.host_key_fingerprint()} accepted and pinned for m1." in text
    assert "m2: the fingerprint" in text and "nothing was accepted" in text
    m1, m2 = Node.objects.filter(cluster=cluster).order_by("name")
    assert m1.ssh_host_key_fingerprint == one.host_key_fingerprint() and m1.host_key_accepted_by == operator
    assert not m2.ssh_host_key and m2.offered_host_key_fingerprint == two.host_key_fingerprint()
    outcomes = dict(AuditEvent.objects.filter(action="node.host_key_accepted").values_list("object_repr", "outcome"))
    assert outcomes == {"c1/m1": "success", "c1/m2": "denied"}

    client.post(reverse("nodes:bulk-host-key-accept", args=["c1"]), {"accept": [f"m2 {two.host_key_fingerprint()}"]})
    for node in (m1, m2):
        assert services.run_check(node.pk)["login"], "pinned: the check logs in"

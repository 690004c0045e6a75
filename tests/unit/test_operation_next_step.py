"""Issue 18 item 3: an operation's page leads on. Once it has ended it links to its cluster's next
step (workflows.next_step); while it runs, a link to the cluster page waits hidden for operation.js,
and Pause (following the log) is shown only while there is something to follow."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from clusters.models import Cluster
from nodes.models import Node
from operations.models import Operation
from tests.unit.test_cluster_page_leads import machine, people, ready_cluster  # noqa: F401 (people: fixture)

pytestmark = pytest.mark.django_db


def test_an_ended_operation_links_to_the_next_step(client, people):  # noqa: F811 (the fixture)
    cluster = ready_cluster(people, status=Cluster.Status.RUNNING)
    machine(cluster, "cp1", pinned=True, status=Node.Status.JOINED)
    machine(cluster, "w1", pinned=True)
    init = Operation.objects.create(cluster=cluster, kind="init", params={"node": "cp1"}, status="succeeded")
    client.force_login(people["operator"])

    html = client.get(f"/operations/{init.pk}/").content.decode()
    link = re.search(r'<p class="hint-box next-step-link" id="next-step-link">(.*?)</p>', html, re.S)
    assert link, "a visible way on"
    assert '<a href="/clusters/lead/#join-actions" id="next-step-link-action">Join workers</a>' in link.group(1)
    assert re.search(r'id="log-follow"[^>]* hidden', html), "nothing more to follow: no Pause"

    running = Operation.objects.create(
        cluster=cluster,
        kind="join-workers",
        params={"node_ids": [], "nodes": []},
        status=Operation.Status.RUNNING,
        worker="elsewhere:1",
        heartbeat_at=timezone.now(),  # a live worker's: not reaped by the page
    )
    html = client.get(f"/operations/{running.pk}/").content.decode()
    assert re.search(r'id="next-step-link" data-generic="yes" hidden', html), "hidden until it ends"
    assert 'href="/clusters/lead/#next-step"' in html
    assert not re.search(r'id="log-follow"[^>]* hidden', html)

    # A failed operation whose next step is itself: its own Resume is the step, no link away.
    Operation.objects.filter(pk=running.pk).update(status=Operation.Status.FAILED)
    html = client.get(f"/operations/{running.pk}/").content.decode()
    assert re.search(r'id="next-step-link" data-generic="yes" hidden', html)

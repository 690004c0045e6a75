"""The summary's live Node status (clusters.nodestatus): while a cluster page is open its poll
keeps the Nodes fresh, with at most one refresh per cluster per interval whatever the number of
viewers, and a worker (not the web process) asks the API server.

Real parts: the Django test client's polls, the database's conditional UPDATE, the django-q2 ORM
broker's queue, the task run as the worker runs it, and a real connection to an API server that
does not answer (a closed loopback port). The refresh that reads real Nodes, and a hand-made
change reaching the page, run against the test bed in tests/e2e/test_engine_cluster.py; the
same claim raced in threads is in tests/integration/test_concurrency.py (SQLite and PostgreSQL).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from django_q.models import OrmQ

from clusters import live, nodestatus
from clusters.models import Cluster, ClusterInventory
from clusters.tasks import refresh_nodes
from core.formatting import time_text
from kubeadm import pki
from nodes.models import Node
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities
from tests.support.live import page_versions
from tests.support.services import free_port

pytestmark = pytest.mark.django_db


def node_row(name: str, *, unschedulable: bool = False, ready: bool = True) -> dict:
    return {
        "name": name,
        "ready": ready,
        "roles": [],
        "kubelet_version": "v1.37.2",
        "internal_ip": "10.0.0.22",
        "unschedulable": unschedulable,
        "created": "",
    }


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


@pytest.fixture
def viewer(make_user):
    return make_user("vera", role="viewer")


@pytest.fixture
def cluster(viewer, ca) -> Cluster:
    """Initialized, its CA held, read back 3 minutes ago, its API server a closed loopback port."""
    cluster = make_cluster(
        "up", team=team_of(viewer), control_plane_endpoint=f"127.0.0.1:{free_port()}", status=Cluster.Status.RUNNING
    )
    store_authorities(cluster, {"ca": ca})
    Node.objects.create(cluster=cluster, name="w1", address="10.0.0.22", status=Node.Status.JOINED)
    ClusterInventory.objects.create(
        cluster=cluster, collected_at=timezone.now() - timedelta(minutes=3), api_nodes=[node_row("w1")]
    )
    return cluster


def client_of(user) -> Client:
    made = Client()
    made.force_login(user)
    return made


def open_page(client: Client, cluster: Cluster) -> dict[str, str]:
    page = client.get(cluster.get_absolute_url())
    assert page.status_code == 200
    return page_versions(page.content.decode())


def poll(client: Client, cluster: Cluster, versions: dict[str, str]):
    return client.get(f"/clusters/{cluster.name}/live/", versions)


def refreshes_queued() -> list[tuple]:
    """The refresh tasks waiting in the ORM broker: (cluster id, lease) each."""
    return [q.task["args"] for q in OrmQ.objects.all() if q.task.get("func") == nodestatus.TASK]


def run_queued() -> list[str]:
    """What a django-q2 worker does with the queue: run each refresh task once."""
    results = [refresh_nodes(*args) for args in refreshes_queued()]
    OrmQ.objects.all().delete()
    return results


def summary_of(response) -> str:
    return re.search(r'<section class="card summary" id="summary".*?</section>', response.content.decode(), re.S)[0]


def test_many_viewers_polling_queue_one_refresh_per_interval(
    cluster, viewer, make_user, django_capture_on_commit_callbacks
):
    viewers = [client_of(viewer), client_of(make_user("otto", role="operator"))]
    versions = [open_page(c, cluster) for c in viewers]
    assert refreshes_queued() == [], "opening the page queues nothing: its poll does"
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            for client, known in zip(viewers, versions, strict=True):
                poll(client, cluster, known)
    queued = refreshes_queued()
    assert len(queued) == 1, queued
    assert queued[0][0] == cluster.pk
    inventory = ClusterInventory.objects.get(cluster=cluster)
    assert queued[0][1] == inventory.refresh_lease_until.isoformat()

    # The refresh ran (it failed: nothing answers); within the interval nobody queues another.
    assert run_queued() == ["failed"]
    with django_capture_on_commit_callbacks(execute=True):
        poll(viewers[0], cluster, versions[0])
    assert refreshes_queued() == []
    # Once the interval has passed since the last refresh ended, the next poll queues one.
    past = timezone.now() - timedelta(seconds=nodestatus.interval().total_seconds() + 1)
    ClusterInventory.objects.filter(cluster=cluster).update(refresh_claimed_at=past)
    with django_capture_on_commit_callbacks(execute=True):
        poll(viewers[1], cluster, versions[1])
        poll(viewers[0], cluster, versions[0])
    assert len(refreshes_queued()) == 1


def test_two_refreshers_that_both_see_it_due_refresh_once(cluster):
    # Both read the cluster's row (and its claim columns) before either claims: both see it due.
    first, second = (live.clusters().get(pk=cluster.pk) for _ in range(2))
    assert first.live_refresh_claimed_at is None and second.live_refresh_claimed_at is None
    assert [nodestatus.request_refresh(first), nodestatus.request_refresh(second)] == [True, False]
    # A lease is running: even past the interval no one claims until it ends or expires.
    later = timezone.now() + timedelta(seconds=nodestatus.interval().total_seconds() + 1)
    assert nodestatus.claim(cluster, now=later) is None
    assert nodestatus.claim(cluster, now=timezone.now() + nodestatus.LEASE + timedelta(seconds=1)) is not None


def test_a_poll_with_no_refresh_due_costs_no_query_more(cluster, viewer, django_capture_on_commit_callbacks):
    client = client_of(viewer)
    versions = open_page(client, cluster)
    with django_capture_on_commit_callbacks(execute=True):
        poll(client, cluster, versions)  # claims and queues
    with CaptureQueriesContext(connection) as idle:
        assert poll(client, cluster, versions).status_code == 204
    with override_settings(NODE_STATUS_REFRESH_SECONDS=0), CaptureQueriesContext(connection) as off:
        assert poll(client, cluster, versions).status_code == 204
    assert len(idle) == len(off), [q["sql"] for q in idle]
    assert not any("clusters_clusterinventory" in q["sql"] and q["sql"].startswith("UPDATE") for q in idle)


def test_an_unreachable_api_server_is_said_with_its_endpoint_and_the_last_read(
    cluster, viewer, django_capture_on_commit_callbacks
):
    client = client_of(viewer)
    versions = open_page(client, cluster)
    with django_capture_on_commit_callbacks(execute=True):
        poll(client, cluster, versions)
    assert run_queued() == ["failed"]
    inventory = ClusterInventory.objects.get(cluster=cluster)
    assert inventory.refresh_lease_until is None, "the claim is released"
    assert cluster.control_plane_endpoint in inventory.refresh_error
    assert "Traceback" not in inventory.refresh_error

    response = poll(client, cluster, versions)
    assert response.status_code == 200, "the failure changes the summary's version"
    summary = summary_of(response)
    box = re.search(r'<div class="error-box" id="summary-unreachable">.*?</div>', summary, re.S)[0]
    assert f"The API server at <code>{cluster.control_plane_endpoint}</code> could not be asked" in box
    assert "does not answer" in box and "Traceback" not in box
    assert re.search(rf"as it was read <time [^>]*>{time_text(inventory.collected_at)}</time>", box), box
    assert "every 15 seconds" in box
    # The last Nodes read stay shown.
    assert re.search(r'<tr data-node="w1">.*?>Ready<', summary, re.S)


def test_refreshed_nodes_are_shown_while_newer_than_the_read_back(cluster, make_user):
    client = client_of(make_user("otto", role="operator"))
    versions = open_page(client, cluster)
    now = timezone.now()
    # What a refresh stores when someone cordoned w1 by hand.
    ClusterInventory.objects.filter(cluster=cluster).update(
        refreshed_nodes=[node_row("w1", unschedulable=True)], refreshed_at=now, refresh_changed_at=now
    )
    response = poll(client, cluster, versions)
    summary = summary_of(response)
    assert "SchedulingDisabled" in summary
    assert "Kubernetes status live from the API server, read again every 15 seconds" in summary
    assert 'value="uncordon"' in summary, "the button follows: uncordon a cordoned Node"
    versions |= page_versions(response.content.decode())
    assert poll(client, cluster, versions).status_code == 204, "the same refresh again changes nothing"
    # A read-back after it (an uncordon operation reads the Nodes back) is newer: it is shown.
    ClusterInventory.objects.filter(cluster=cluster).update(api_nodes=[node_row("w1")], collected_at=timezone.now())
    response = poll(client, cluster, versions)
    summary = summary_of(response)
    assert "SchedulingDisabled" not in summary and "just now" in summary
    versions |= page_versions(response.content.decode())
    # A later refresh that reads the same cordoned Node as the one before it is newer again: shown,
    # though its rows did not change since that refresh (which of the two is newer is in the version).
    ClusterInventory.objects.filter(cluster=cluster).update(refreshed_at=timezone.now())
    assert "SchedulingDisabled" in summary_of(poll(client, cluster, versions))


def test_a_stale_claim_or_a_cluster_not_running_is_not_asked(cluster, viewer, django_capture_on_commit_callbacks):
    assert refresh_nodes(cluster.pk, (timezone.now() + timedelta(seconds=5)).isoformat()) == "stale"
    lease = nodestatus.claim(cluster)
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.FAILED)
    assert refresh_nodes(cluster.pk, lease.isoformat()) == "not running"
    inventory = ClusterInventory.objects.get(cluster=cluster)
    assert inventory.refresh_error == "" and inventory.refreshed_at is None and inventory.refresh_lease_until is None
    # Its page's poll claims nothing and queues nothing.
    ClusterInventory.objects.filter(cluster=cluster).update(refresh_claimed_at=None)
    client = client_of(viewer)
    with django_capture_on_commit_callbacks(execute=True):
        poll(client, cluster, open_page(client, cluster))
    assert refreshes_queued() == []
    assert ClusterInventory.objects.get(cluster=cluster).refresh_claimed_at is None
    assert "read again every" not in summary_of(client.get(cluster.get_absolute_url()))

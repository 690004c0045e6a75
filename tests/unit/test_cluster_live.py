"""The cluster page's poll (clusters:live): nothing when nothing changed, only the parts that did
otherwise, and only to those who may see the cluster."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import Cluster, ClusterInventory, MachineInventory
from core.models import TeamMembership
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.live import page_versions
from tokens.models import BootstrapToken, CertificateKey, TokenPolicy, TokenSync

pytestmark = pytest.mark.django_db

LIVE_IDS = (
    "cluster-status",
    "init-state",
    "node-list",
    "token-panel",
    "operations",
    "inventory",
    "next-step",
    "summary",
)
# The top of the page restates other parts (workflows.next_step, workflows.summary): it changes
# with them, and only with them (clusters.panels.LivePart.includes).
RESTATED = {"next-step": {"cluster-status", "init-state", "node-list", "operations"}}
RESTATED["summary"] = {"cluster-status", "node-list", "token-panel", "operations", "inventory"}


def with_restating(part: str) -> set[str]:
    """``part`` and the parts at the top of the page that restate it."""
    return {part} | {top for top, parts in RESTATED.items() if part in parts}


@pytest.fixture
def world(make_user):
    viewer = make_user("vera", role="viewer")
    cluster = make_cluster("live", team=team_of(viewer))
    node = Node.objects.create(cluster=cluster, name="node-a", address="10.0.0.21")
    operation = Operation.objects.create(cluster=cluster, kind="join", status=Operation.Status.RUNNING)
    token = BootstrapToken.objects.create(
        cluster=cluster, token_id="abcdef", secret="0123456789abcdef", expires_at=timezone.now() + timedelta(days=1)
    )
    # An hour old: times shown as "45 s ago" are re-rendered as they change, which is not the point here.
    Operation.objects.filter(pk=operation.pk).update(created_at=timezone.now() - timedelta(hours=1))
    return {"viewer": viewer, "cluster": cluster, "node": node, "operation": operation, "token": token}


def open_page(client, world) -> dict[str, str]:
    client.force_login(world["viewer"])
    page = client.get("/clusters/live/")
    assert page.status_code == 200
    versions = page_versions(page.content.decode())
    assert set(versions) == set(LIVE_IDS)
    return versions


def poll(client, versions):
    return client.get("/clusters/live/live/", versions)


def swapped_ids(response) -> set[str]:
    """The ids of the top-level elements of a poll's answer (what htmx swaps in)."""
    html = response.content.decode()
    return {match for match in re.findall(r'^<\w+[^>]* id="([\w-]+)"', html, re.M)} - {"live-versions"}


def test_a_poll_answers_nothing_while_nothing_changed(client, world):
    versions = open_page(client, world)
    response = poll(client, versions)
    assert response.status_code == 204 and response.content == b""


def test_each_state_change_sends_only_its_own_part(client, world):
    versions = open_page(client, world)

    Node.objects.filter(pk=world["node"].pk).update(status=Node.Status.JOINED)
    response = poll(client, versions)
    assert response.status_code == 200
    assert swapped_ids(response) == with_restating("node-list") == {"node-list", "next-step", "summary"}
    assert 'class="status status-joined">Joined' in response.content.decode()
    versions = page_versions(response.content.decode())
    assert poll(client, versions).status_code == 204, "the new versions are the page's from then on"

    Operation.objects.filter(pk=world["operation"].pk).update(status=Operation.Status.FAILED)
    response = poll(client, versions)
    assert swapped_ids(response) == with_restating("operations")
    assert "status-failed" in response.content.decode()
    versions = page_versions(response.content.decode())

    BootstrapToken.objects.filter(pk=world["token"].pk).update(status=BootstrapToken.Status.REVOKED)
    response = poll(client, versions)
    assert swapped_ids(response) == with_restating("token-panel") == {"token-panel", "summary"}
    assert 'data-state="revoked"' in response.content.decode()


def _init_failed(w) -> None:
    Operation.objects.create(cluster=w["cluster"], kind="init", params={"node": "node-a"}, status="failed")


def _read_back(w) -> None:
    ClusterInventory.objects.create(cluster=w["cluster"], collected_at=timezone.now(), api_nodes=[{"name": "x"}])


def _machine_read_back(w) -> None:
    MachineInventory.objects.create(node=w["node"], collected_at=timezone.now())


def _sync_failed(w) -> None:
    TokenSync.objects.filter(cluster=w["cluster"]).update(result=TokenSync.Result.UNREACHABLE, message="no route")


def _certificate_key(w) -> None:
    CertificateKey.objects.create(cluster=w["cluster"], key="00" * 32, expires_at=timezone.now() + timedelta(hours=2))


def _rotate_sooner(w) -> None:
    """The panel's rotation window follows the policy's rotate-before time (a token's "expiring" is
    the last quarter of its own lifetime, tokens.vocabulary, so the policy no longer moves it)."""
    TokenPolicy.objects.filter(cluster=w["cluster"]).update(rotate_before=timedelta(days=2))


@pytest.mark.parametrize(
    ("change", "part", "shown"),
    [
        (
            lambda w: Cluster.objects.filter(pk=w["cluster"].pk).update(status=Cluster.Status.RUNNING),
            "cluster-status",
            "Running",
        ),
        (_init_failed, "init-state", "It stopped"),
        (_read_back, "inventory", 'id="api-nodes"'),
        (_machine_read_back, "inventory", 'id="certificates-node-a"'),
        (_sync_failed, "token-panel", "no route"),
        (_certificate_key, "token-panel", "certificate key #"),
        (_rotate_sooner, "token-panel", "rotate-before time (2 days)"),
    ],
    ids=["cluster-status", "init", "api-read-back", "machine-read-back", "sync", "certificate-key", "policy"],
)
def test_each_part_follows_what_it_shows(client, world, change, part, shown):
    versions = open_page(client, world)
    change(world)
    response = poll(client, versions)
    assert part in swapped_ids(response)
    assert shown in response.content.decode()


def test_a_token_that_expires_changes_its_part_without_any_write(client, world):
    """A token's state also moves with the clock (valid, expiring, expired)."""
    BootstrapToken.objects.filter(pk=world["token"].pk).update(expires_at=timezone.now() + timedelta(seconds=1))
    versions = open_page(client, world)
    BootstrapToken.objects.filter(pk=world["token"].pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = poll(client, versions)
    assert "token-panel" in swapped_ids(response)
    assert 'data-state="expired"' in response.content.decode()


def test_a_poll_without_versions_gets_every_part(client, world):
    client.force_login(world["viewer"])
    response = poll(client, {})
    assert response.status_code == 200 and swapped_ids(response) == set(LIVE_IDS)


def test_an_idle_poll_costs_a_third_of_the_page_or_less(client, world):
    versions = open_page(client, world)
    with CaptureQueriesContext(connection) as page:
        client.get("/clusters/live/")
    with CaptureQueriesContext(connection) as idle:
        assert poll(client, versions).status_code == 204
    assert len(idle) * 3 <= len(page), (len(idle), len(page))


def test_the_poll_refuses_who_may_not_see_the_cluster(client, world, make_user):
    versions = open_page(client, world)
    Node.objects.filter(pk=world["node"].pk).update(status=Node.Status.JOINED)

    client.logout()
    anonymous = poll(client, versions)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")

    stranger = make_user("otto", team="other", role="admin")
    client.force_login(stranger)
    refused = poll(client, versions)
    assert refused.status_code == 404 and "node-a" not in refused.content.decode()
    assert client.get("/clusters/live/").status_code == 404, "the same answer as the page"

    # A viewer whose membership ends loses the poll at once, as the page.
    TeamMembership.objects.filter(user=world["viewer"]).delete()
    client.force_login(world["viewer"])
    gone = poll(client, versions)
    assert gone.status_code == 404 and "node-a" not in gone.content.decode()

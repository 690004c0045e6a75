"""Prepare machine from the pages (workflows.prepare_views, artifacts.views): offered to operators
on the cluster and machine pages, refused with the reason and one record before anything is
contacted, the cluster's source saved with its record, an artifact set uploaded by a superuser."""

from __future__ import annotations

import pytest

from artifacts.models import ArtifactSet
from audit.models import AuditEvent
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support import prepare_bed
from tests.unit.test_artifact_sets import _tar
from workflows.models import PrepareSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_user, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "store"
    operator = make_user("olivia", role="operator")
    viewer = make_user("vera", role="viewer")
    cluster = make_cluster("prep", team=team_of(operator))
    pinned = Node.objects.create(
        cluster=cluster,
        name="m1",
        address="10.0.0.41",
        ssh_host_key="ssh-ed25519 AAAA",
        ssh_host_key_fingerprint="SHA256:x",
    )
    unpinned = Node.objects.create(cluster=cluster, name="m2", address="10.0.0.42")
    return {"operator": operator, "viewer": viewer, "cluster": cluster, "pinned": pinned, "unpinned": unpinned}


def test_the_pages_offer_prepare_to_operators_only(client, world):
    client.force_login(world["operator"])
    html = client.get("/clusters/prep/").content.decode()
    assert 'id="prepare-machines-form"' in html and 'action="/clusters/prep/prepare/"' in html
    assert 'id="prepare-settings"' in html
    node_page = client.get("/clusters/prep/nodes/m1/").content.decode()
    assert 'id="prepare-machine-form"' in node_page and "Prepare m1" in node_page
    client.force_login(world["viewer"])
    assert 'id="prepare-machines-form"' not in client.get("/clusters/prep/").content.decode()
    assert 'id="prepare-machine-form"' not in client.get("/clusters/prep/nodes/m1/").content.decode()


def test_prepare_is_queued_for_ticked_machines_and_refused_with_the_reason(client, world):
    client.force_login(world["operator"])
    response = client.post("/clusters/prep/prepare/", {"nodes": [world["pinned"].pk], "dry_run": "on"})
    operation = Operation.objects.get(kind="prepare-machines")
    assert response.status_code == 302 and response["Location"] == operation.get_absolute_url()
    assert operation.params["dry_run"] is True and operation.params["machines"] == [
        {"id": world["pinned"].pk, "name": "m1"}
    ]
    assert [p.name for p in operation.phases.order_by("order")] == [
        "facts", "swap", "kernel-modules", "sysctl", "container-runtime", "kubernetes", "verify"
    ]  # fmt: skip
    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.SUCCEEDED)
    response = client.post("/clusters/prep/prepare/", {"nodes": [world["unpinned"].pk]}, follow=True)
    assert "m2: its host key has not been accepted yet" in response.content.decode()
    refused = AuditEvent.objects.filter(action="operation.queued", outcome="denied").get()
    assert "host key" in refused.details["error"]


def test_the_air_gapped_source_needs_a_set_of_the_clusters_version(client, world):
    client.force_login(world["operator"])
    response = client.post(
        "/clusters/prep/day2/prepare-settings/",
        {"source": "artifacts", "repository_key_fingerprint": "DE15 B144 86CD 377B 9E87 6E1A 2346 54DA 9A29 6436"},
    )
    assert response.status_code == 302
    assert PrepareSettings.objects.get(cluster=world["cluster"]).source == "artifacts"
    assert AuditEvent.objects.filter(action="prepare_settings.changed").count() == 1
    response = client.post("/clusters/prep/prepare/", {"nodes": [world["pinned"].pk]}, follow=True)
    assert "Kubeboard holds none for Kubernetes v1.37.2" in response.content.decode()
    bad = client.post("/clusters/prep/day2/prepare-settings/", {"source": "artifacts", "registry_mirrors": "nope",
                                                                "repository_key_fingerprint": "x"}, follow=True)  # fmt: skip
    assert "is not registry=URL" in bad.content.decode()


def test_a_superuser_uploads_a_set_and_others_may_not(client, world, tmp_path, django_user_model):
    archive = _tar(prepare_bed.artifact_set(tmp_path / "set"))
    client.force_login(world["operator"])
    assert client.post("/artifacts/upload/", {"archive": archive}).status_code == 403
    admin = django_user_model.objects.create_superuser("root-admin", password="x-long-password-1")
    client.force_login(admin)
    archive.seek(0)
    archive.name = "set.tar.gz"
    response = client.post("/artifacts/upload/", {"archive": archive}, follow=True)
    assert "Imported v1.37.2-amd64" in response.content.decode()
    assert ArtifactSet.objects.get().source == "upload set.tar.gz"
    assert "v1.37.2-amd64" in client.get("/artifacts/").content.decode()

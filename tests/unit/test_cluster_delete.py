"""A superuser deletes a cluster through a confirmed, audited page that says what goes and what
stays; operations, their events and attempts go with it, the audit trail does not."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record, verify_chain
from clusters.models import CertificateAuthority, Cluster
from nodes.models import Node
from operations.models import Event, Operation, PhaseAttempt, PhaseRun
from tests.conftest import team_of
from tests.factories import make_cluster
from tokens.models import BootstrapToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_user):
    root = make_user("root", team=None, superuser=True)
    admin = make_user("ada", role="admin")
    cluster = make_cluster("doomed", team=team_of(admin))
    CertificateAuthority.objects.create(cluster=cluster, name="ca", public_key_pem="x", private_key="secret-key")
    Node.objects.create(cluster=cluster, name="n1", address="10.0.0.21")
    BootstrapToken.objects.create(cluster=cluster, token_id="abcdef", secret="0123456789abcdef")
    operation = Operation.objects.create(cluster=cluster, kind="prepare-identity", status=Operation.Status.SUCCEEDED)
    phase = PhaseRun.objects.create(operation=operation, name="certs", order=1, status=PhaseRun.Status.SUCCEEDED)
    PhaseAttempt.objects.create(phase=phase, number=1, status=PhaseAttempt.Status.SUCCEEDED)
    Event.objects.create(operation=operation, seq=1, created=timezone.now(), message="hello")
    record("cluster.created", obj=cluster)
    return {"root": root, "admin": admin, "cluster": cluster}


def test_the_page_says_what_goes_and_that_machines_are_untouched(client, world):
    client.force_login(world["root"])
    page = client.get("/clusters/doomed/delete/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "contacts no machine" in text and "audit history stays" in text
    for line in ("1 certificate authorities", "1 nodes", "1 bootstrap tokens", "1 operations", "1 events"):
        assert line in text, line
    detail = client.get("/clusters/doomed/").content.decode()
    assert 'id="delete-cluster-link"' in detail


def test_a_confirmed_delete_removes_everything_but_the_audit_trail(client, world):
    client.force_login(world["root"])
    refused = client.post("/clusters/doomed/delete/", {"confirm": "Doomed"})
    assert refused.status_code == 400 and "type doomed exactly" in refused.content.decode()
    assert Cluster.objects.filter(name="doomed").exists()

    response = client.post("/clusters/doomed/delete/", {"confirm": "doomed"})
    assert response.status_code == 302 and response["Location"] == "/clusters/"
    assert not Cluster.objects.filter(name="doomed").exists()
    for model in (CertificateAuthority, Node, BootstrapToken, Operation, PhaseRun, PhaseAttempt, Event):
        assert not model.objects.exists(), model.__name__
    deleted = AuditEvent.objects.get(action="cluster.deleted")
    assert deleted.actor_name == "root" and deleted.cluster_name == "doomed"
    assert deleted.details["machines_touched"] is False
    assert deleted.details["removed"]["events"] == 1 and deleted.details["removed"]["certificate authorities"] == 1
    assert "secret-key" not in str(deleted.details)
    created = AuditEvent.objects.get(action="cluster.created")
    assert created.cluster_name == "doomed", "older records keep the deleted cluster's name"
    assert verify_chain() == []
    assert "deleted from Kubeboard" in client.get("/clusters/").content.decode()


def test_only_a_superuser_may_delete(client, world):
    client.force_login(world["admin"])
    assert client.get("/clusters/doomed/delete/").status_code == 403
    assert client.post("/clusters/doomed/delete/", {"confirm": "doomed"}).status_code == 403
    assert Cluster.objects.filter(name="doomed").exists()
    assert 'id="delete-cluster-link"' not in client.get("/clusters/doomed/").content.decode()


def test_a_running_operation_blocks_the_delete(client, world):
    Operation.objects.create(cluster=world["cluster"], kind="init", status=Operation.Status.RUNNING)
    client.force_login(world["root"])
    response = client.post("/clusters/doomed/delete/", {"confirm": "doomed"})
    assert response.status_code == 400
    assert "is running; cancel it or let it finish" in response.content.decode()
    assert Cluster.objects.filter(name="doomed").exists()
    # The refused attempt is audited as refused, with the reason; nothing says it was deleted.
    refused = AuditEvent.objects.get(action="cluster.deleted")
    assert refused.outcome == "denied" and "is running" in refused.details["error"]

"""The cluster page's actions without machines: who may do what, and what is refused before
anything runs (the test-bed tests drive the real thing)."""

from __future__ import annotations

import pytest
import yaml

from audit.models import AuditEvent
from clusters.models import Cluster
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.support.testbed_cluster import ready_cluster

pytestmark = pytest.mark.django_db(transaction=True)

PINNED = {"ssh_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOr9w8x1xVdS0k4pQm0c6oW6i8vJjIY5nEoQv7sJ8l7Q",
          "ssh_host_key_fingerprint": "SHA256:abc"}  # fmt: skip
FACTS_OK = {
    "binaries": {"kubeadm": {"path": "/usr/bin/kubeadm", "version": "v1.37.2", "skew": None}},
    "etc_kubernetes": {"exists": True, "files": [], "count": 0, "populated": False},
}


@pytest.fixture
def cluster(operator):
    return ready_cluster("web", "10.0.0.10:6443", team=team_of(operator), user=operator)


def machine(cluster, name="m1", address="10.0.0.11", **fields) -> Node:
    values = dict(PINNED, facts=FACTS_OK)
    values.update(fields)
    return Node.objects.create(cluster=cluster, name=name, address=address, **values)


def page(client, cluster) -> str:
    response = client.get(f"/clusters/{cluster.name}/")
    assert response.status_code == 200
    return response.content.decode()


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.wsgi_request._messages)


def test_operator_sees_initialize_with_the_machines_a_viewer_does_not(client, cluster, operator, make_user):
    machine(cluster, role=Node.Role.CONTROL_PLANE)
    client.force_login(operator)
    html = page(client, cluster)
    assert 'id="initialize"' in html and ">m1<" in html
    viewer = make_user("vera", team=team_of(operator).name, role="viewer")
    client.force_login(viewer)
    html = page(client, cluster)
    assert 'id="initialize"' not in html
    response = client.post(f"/clusters/{cluster.name}/initialize/", {"node": Node.objects.get().pk})
    assert response.status_code == 403
    assert not Operation.objects.filter(kind="init").exists()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"ssh_host_key": "", "ssh_host_key_fingerprint": ""}, "host key has not been accepted"),
        (
            {"facts": dict(FACTS_OK, etc_kubernetes={"populated": True, "count": 2, "files": ["/etc/kubernetes/a"]})},
            "reset the machine first",
        ),
        (
            {
                "facts": dict(
                    FACTS_OK,
                    binaries={
                        "kubeadm": {
                            "path": "/usr/bin/kubeadm",
                            "version": "v1.35.1",
                            "skew": "kubeadm v1.35.1 is older than Kubernetes v1.37.2",
                        }
                    },
                )
            },
            "cannot deploy|older than Kubernetes",
        ),
        ({"facts": dict(FACTS_OK, binaries={"kubeadm": {"path": "", "version": None}})}, "kubeadm not found"),
    ],
    ids=["host-key", "etc-kubernetes", "version-skew", "no-kubeadm"],
)
def test_initialize_is_refused_before_anything_runs(client, cluster, operator, fields, expected):
    import re

    node = machine(cluster, role=Node.Role.CONTROL_PLANE, **fields)
    client.force_login(operator)
    before = AuditEvent.objects.count()
    response = client.post(f"/clusters/{cluster.name}/initialize/", {"node": node.pk}, follow=True)
    assert response.status_code == 200
    text = messages_of(response)
    assert re.search(expected, text), text
    assert not Operation.objects.filter(kind="init").exists()
    # One record: the refused request, with its reason.
    assert AuditEvent.objects.count() == before + 1
    refused = AuditEvent.objects.order_by("-seq").first()
    assert (refused.action, refused.outcome, refused.details["kind"]) == ("operation.queued", "denied", "init")
    node.refresh_from_db()
    assert node.status == Node.Status.NEW
    assert Cluster.objects.get(pk=cluster.pk).status == Cluster.Status.READY


def test_initialize_queues_the_operation_with_the_ignore_list_recorded(client, cluster, operator):
    Cluster.objects.filter(pk=cluster.pk).update(ignore_preflight_errors=["NumCPU"])
    node = machine(cluster, ignore_preflight_errors=["Mem", "numcpu"], role=Node.Role.CONTROL_PLANE)
    client.force_login(operator)
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    response = client.post(f"/clusters/{cluster.name}/initialize/", {"node": node.pk, "skip": "addon"})
    operation = Operation.objects.get(kind="init")
    assert response.status_code == 302 and response.url == operation.get_absolute_url()
    # The request writes exactly one record, the queued operation (its end is the engine's record).
    written = AuditEvent.objects.filter(seq__gt=before).values_list("action", "outcome", "object_id")
    assert list(written) == [("operation.queued", "success", str(operation.pk))]
    assert operation.params["ignore_preflight_errors"] == ["NumCPU", "Mem"]
    phases = list(operation.phases.order_by("order").values_list("name", "status"))
    assert phases[0] == ("check-machine", "pending") and ("addon", "skipped") in phases
    assert all(p.node_id == node.pk for p in operation.phases.all())
    node.refresh_from_db()
    assert (node.role, node.status) == (Node.Role.CONTROL_PLANE, Node.Status.JOINING)
    assert Cluster.objects.get(pk=cluster.pk).status == Cluster.Status.INITIALIZING
    # A second click while it runs is refused with a pointer to the first.
    response = client.post(f"/clusters/{cluster.name}/initialize/", {"node": node.pk}, follow=True)
    assert Operation.objects.filter(kind="init").count() == 1


def test_unknown_skip_name_is_a_form_error(client, cluster, operator):
    node = machine(cluster, role=Node.Role.CONTROL_PLANE)
    client.force_login(operator)
    response = client.post(f"/clusters/{cluster.name}/initialize/", {"node": node.pk, "skip": "cert"}, follow=True)
    assert "cert is not one of the available choices" in messages_of(response)
    assert not Operation.objects.filter(kind="init").exists()


def test_join_is_refused_until_the_control_plane_runs(client, cluster, operator):
    node = machine(cluster)
    client.force_login(operator)
    response = client.post(f"/clusters/{cluster.name}/join/", {"nodes": [node.pk], "parallelism": 2}, follow=True)
    assert response.status_code == 200
    # Without a running control plane the join form is not even offered, and a forged POST is refused.
    assert 'id="join-workers"' not in page(client, cluster)
    assert "has no control plane yet" in messages_of(response)
    assert not Operation.objects.filter(kind__startswith="join").exists()


def test_join_refuses_a_machine_that_joined_and_one_whose_etc_kubernetes_is_populated(client, cluster, operator):
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING)
    dirty = machine(cluster, "m2", "10.0.0.12", facts=dict(FACTS_OK, etc_kubernetes={"populated": True, "count": 1}))
    machine(cluster, "m3", "10.0.0.13", role=Node.Role.CONTROL_PLANE)
    client.force_login(operator)
    html = page(client, cluster)
    assert 'id="join-workers"' in html and 'id="join-control-plane"' in html and 'id="initialize"' not in html
    assert f"--discovery-token-ca-cert-hash {cluster.ca_pin_hash}" in html
    assert f'href="/clusters/{cluster.name}/tokens/"' in html
    response = client.post(f"/clusters/{cluster.name}/join/", {"nodes": [dirty.pk]}, follow=True)
    assert "/etc/kubernetes is not empty" in messages_of(response) and "reset" in messages_of(response)
    assert not Operation.objects.filter(kind__startswith="join").exists()


def test_engine_settings_validate_and_audit(client, cluster, operator):
    client.force_login(operator)
    url = f"/clusters/{cluster.name}/engine-settings/"
    response = client.post(
        url,
        {"ignore_preflight_errors": "CRI, all", "join_parallelism": 3, "control_plane_join_method": "pre-seed"},
        follow=True,
    )
    assert "'all' already ignores every check" in messages_of(response)
    response = client.post(
        url,
        {"ignore_preflight_errors": "CRI, ImagePull", "join_parallelism": 0, "control_plane_join_method": "x"},
        follow=True,
    )
    assert "Ensure this value is greater than or equal to 1" in messages_of(response)
    client.post(
        url,
        {
            "ignore_preflight_errors": "CRI, ImagePull",
            "join_parallelism": 3,
            "control_plane_join_method": "upload-certs",
        },
    )
    cluster.refresh_from_db()
    assert cluster.ignore_preflight_errors == ["CRI", "ImagePull"]
    assert (cluster.join_parallelism, cluster.control_plane_join_method) == (3, "upload-certs")
    record = AuditEvent.objects.filter(action="cluster.engine_settings_changed").get()
    assert record.details["join_parallelism"] == {"from": 5, "to": 3}


def test_admin_kubeconfig_needs_the_admin_role_and_is_audited_without_secrets(client, cluster, operator, make_user):
    client.force_login(operator)
    assert client.post(f"/clusters/{cluster.name}/admin-kubeconfig/", {"ttl": "1h"}).status_code == 403
    admin = make_user("ada", team=team_of(operator).name, role="admin")
    client.force_login(admin)
    response = client.post(f"/clusters/{cluster.name}/admin-kubeconfig/", {"ttl": "1h"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="web-admin.conf"'
    assert response["Cache-Control"] == "no-store"
    config = yaml.safe_load(response.content)
    user = config["users"][0]["user"]
    assert user["client-certificate-data"] and user["client-key-data"]
    assert config["clusters"][0]["cluster"]["server"] == "https://10.0.0.10:6443"
    record = AuditEvent.objects.get(action="cluster.admin_kubeconfig_issued")
    assert record.actor == admin and record.details["ttl_seconds"] == 3600
    text = str(record.details)
    assert user["client-key-data"] not in text and "PRIVATE" not in text

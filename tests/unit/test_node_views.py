"""The machine screens: who may do what, bad input, secrets never shown (Django test client, real database)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from nodes import services
from nodes.models import ClusterSSHKey, Node
from remote import keys
from tests.conftest import team_of
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db

GOOD = {"name": "cp1", "address": "10.0.0.11", "ssh_port": "22", "ssh_user": "root", "role": "control-plane"}


@pytest.fixture
def cluster(operator):
    return make_cluster("c1", team=team_of(operator))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def add_url(cluster) -> str:
    return reverse("nodes:add", args=[cluster.name])


def post_add(user, cluster, **overrides):
    return client_for(user).post(add_url(cluster), {**GOOD, "credential": "cluster-key", **overrides})


def audit_actions() -> list[str]:
    """What the machine screens recorded (log-ins are audited too, by the audit app)."""
    return list(AuditEvent.objects.exclude(action__startswith="auth.").order_by("id").values_list("action", flat=True))


def offered(node: Node, fingerprint: str = "SHA256:" + "b" * 43) -> Node:
    """What the transport records on first contact (the same service it calls)."""
    line = f"ssh-ed25519 AAAA{fingerprint[7:15]}"
    services.note_offered_host_key(node.pk, line, fingerprint, changed=bool(node.ssh_host_key))
    node.refresh_from_db()
    return node


# --- permissions ---------------------------------------------------------------------------


def test_viewer_sees_machines_but_cannot_add_check_or_accept(make_user, cluster):
    viewer = make_user("vera", role="viewer")
    node = offered(Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11"))
    client = client_for(viewer)
    page = client.get(node.get_absolute_url())
    assert page.status_code == 200 and b"Accept SHA256" not in page.content
    assert b"Add machine" not in client.get(cluster.get_absolute_url()).content
    assert client.get(add_url(cluster)).status_code == 403
    assert client.post(add_url(cluster), {**GOOD, "credential": "cluster-key"}).status_code == 403
    accept = reverse("nodes:host-key-accept", args=[cluster.name, node.name])
    assert client.post(accept, {"fingerprint": node.offered_host_key_fingerprint}).status_code == 403
    assert client.post(reverse("nodes:check", args=[cluster.name, node.name])).status_code == 403
    assert client.post(reverse("nodes:delete", args=[cluster.name, node.name])).status_code == 403
    node.refresh_from_db()
    assert not node.ssh_host_key and Node.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="node.").exclude(action="node.host_key_offered").exists()


def test_the_node_page_links_to_the_machines_history(make_user, cluster):
    viewer = make_user("vera", role="viewer")
    node = Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11")
    client = client_for(viewer)
    history = reverse("audit:node", args=[node.pk])
    assert f'id="node-history-link" href="{history}"' in client.get(node.get_absolute_url()).content.decode()
    assert client.get(history).status_code == 200


def test_other_team_gets_404_everywhere(make_user, cluster):
    outsider = make_user("otto", team="other", role="admin")
    node = Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11")
    client = client_for(outsider)
    assert client.get(node.get_absolute_url()).status_code == 404
    assert client.get(add_url(cluster)).status_code == 404
    assert client.post(reverse("nodes:check", args=[cluster.name, node.name])).status_code == 404
    assert client.get(reverse("nodes:check-status", args=[cluster.name, node.name])).status_code == 404


# --- adding --------------------------------------------------------------------------------


def test_operator_adds_a_machine_with_the_cluster_key(operator, cluster):
    response = post_add(operator, cluster, address=" 10.0.0.11 ")
    node = Node.objects.get()
    assert response.status_code == 302 and response["Location"] == node.get_absolute_url()
    assert (node.address, node.credential, node.role) == ("10.0.0.11", "cluster-key", "control-plane")
    key = ClusterSSHKey.objects.get(cluster=cluster)
    assert key.public_key.startswith("ssh-ed25519 ")
    assert audit_actions() == ["cluster.ssh_key_generated", "node.added"]
    page = client_for(operator).get(node.get_absolute_url())
    assert key.public_key.encode() in page.content
    assert b'data-copy="#cluster-public-key"' in page.content
    assert b"Not yet seen" in page.content
    panel = client_for(operator).get(cluster.get_absolute_url())
    assert key.public_key.encode() in panel.content and b"cp1" in panel.content


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"address": "10.0.0.300"}, "address", "not a valid one"),
        ({"address": "root@node1"}, "address", "no user@"),
        ({"ssh_port": "0"}, "ssh_port", "greater than or equal to 1"),
        ({"ssh_port": "70000"}, "ssh_port", "less than or equal to 65535"),
        ({"ssh_user": "Root User"}, "ssh_user", "not a valid user name"),
        ({"name": "CP_1"}, "name", "Kubernetes node name"),
        ({"credential": "private-key"}, "private_key", "Paste or upload the private key"),
        ({"credential": "private-key", "private_key": "ssh-ed25519 AAAA x"}, "private_key", "This is a public key"),
        ({"credential": "password"}, "password", "Enter the password"),
        ({"ignore_preflight_errors": "all, CRI"}, "ignore_preflight_errors", "list it alone"),
        ({"ignore_preflight_errors": "Port-6443; rm"}, "ignore_preflight_errors", "Not a kubeadm preflight check"),
    ],
)
def test_bad_input_is_refused_field_by_field_and_nothing_is_saved(operator, cluster, overrides, field, message):
    response = post_add(operator, cluster, **overrides)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Node.objects.exists()
    assert audit_actions() == [] and not ClusterSSHKey.objects.exists()


def test_pasted_key_and_upload_are_validated_and_stored_encrypted(operator, cluster):
    pair = keys.generate_key_pair("pasted")
    response = post_add(operator, cluster, credential="private-key", private_key=pair.private_key)
    assert response.status_code == 302
    node = Node.objects.get()
    assert node.ssh_private_key.reveal().strip() == pair.private_key.strip()
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssh_private_key FROM nodes_node WHERE id = %s", [node.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith("fernet:") and "PRIVATE KEY" not in stored
    edit = client_for(operator).get(reverse("nodes:edit", args=[cluster.name, node.name]))
    assert b"PRIVATE KEY-----" not in edit.content and b"A private key is stored" in edit.content
    assert "PRIVATE" not in str(AuditEvent.objects.get(action="node.added").details)


def test_password_is_write_only(operator, cluster):
    post_add(operator, cluster, credential="password", password="s3cret-pass")
    node = Node.objects.get()
    client = client_for(operator)
    for url in (
        node.get_absolute_url(),
        reverse("nodes:edit", args=[cluster.name, node.name]),
        cluster.get_absolute_url(),
    ):
        assert b"s3cret-pass" not in client.get(url).content
    # Editing without a new password keeps the stored one.
    data = {**GOOD, "credential": "password", "ssh_port": "2222", "password": ""}
    assert client.post(reverse("nodes:edit", args=[cluster.name, node.name]), data).status_code == 302
    node.refresh_from_db()
    assert node.ssh_port == 2222 and node.ssh_password.reveal() == "s3cret-pass"
    # Switching to the cluster key drops the password.
    data["credential"] = "cluster-key"
    client.post(reverse("nodes:edit", args=[cluster.name, node.name]), data)
    node.refresh_from_db()
    assert node.credential == "cluster-key" and not node.ssh_password
    changed = AuditEvent.objects.filter(action="node.changed").order_by("id")
    assert [e.details["changed"] for e in changed] == [["ssh_port"], ["credential"]]


def test_a_machine_belongs_to_one_cluster_named_only_to_who_may_see_it(make_user, operator, cluster):
    secret_team_user = make_user("sam", team="secret", role="operator")
    hidden = make_cluster("hidden", team=team_of(secret_team_user))
    Node.objects.create(cluster=hidden, name="n1", address="10.0.0.11", ssh_port=22)
    response = post_add(operator, cluster)
    assert response.status_code == 400
    assert response.context["form"].errors["address"] == [
        "This machine (10.0.0.11:22) is already registered in another cluster; a machine can be part of only one cluster."
    ]
    visible = make_cluster("visible", team=team_of(operator))
    Node.objects.create(cluster=visible, name="n2", address="10.0.0.12", ssh_port=22)
    response = post_add(operator, cluster, address="10.0.0.12")
    assert "already belongs to cluster visible (node n2)" in response.context["form"].errors["address"][0]
    # Another port on the same address is another machine (e.g. a NAT gateway).
    assert post_add(operator, cluster, address="10.0.0.12", ssh_port="2222").status_code == 302


def test_changing_the_address_unpins_the_host_key(operator, cluster):
    node = offered(Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11"))
    services.accept_host_key(node, user=operator, fingerprint=node.offered_host_key_fingerprint)
    data = {**GOOD, "credential": "cluster-key", "address": "10.0.0.99"}
    client_for(operator).post(reverse("nodes:edit", args=[cluster.name, node.name]), data)
    node.refresh_from_db()
    assert node.address == "10.0.0.99" and node.host_key_state == Node.HostKeyState.UNKNOWN


def test_a_refused_edit_shows_the_stored_machine_not_the_rejected_name(operator, cluster):
    # The form writes what was typed onto the machine it validates; the page (title, Cancel
    # link) must keep naming the stored machine, or a name with "/" cannot even be linked.
    node = Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11")
    url = reverse("nodes:edit", args=[cluster.name, node.name])
    for bad_name in ("https://[::1", "../../etc/passwd", "<b>x</b>"):
        response = client_for(operator).post(url, {**GOOD, "credential": "cluster-key", "name": bad_name})
        assert response.status_code == 400
        assert f'href="{node.get_absolute_url()}">Cancel</a>' in response.content.decode()
        assert b"Edit machine cp1" in response.content
    node.refresh_from_db()
    assert node.name == "cp1"


# --- host keys -----------------------------------------------------------------------------


def test_operator_accepts_the_offered_host_key(operator, cluster):
    node = offered(Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11"))
    client = client_for(operator)
    page = client.get(node.get_absolute_url())
    assert node.offered_host_key_fingerprint.encode() in page.content and b'id="accept-host-key"' in page.content
    accept = reverse("nodes:host-key-accept", args=[cluster.name, node.name])
    client.post(accept, {"fingerprint": "SHA256:" + "c" * 43})
    node.refresh_from_db()
    assert node.host_key_state == Node.HostKeyState.OFFERED
    client.post(accept, {"fingerprint": node.offered_host_key_fingerprint})
    node.refresh_from_db()
    assert node.host_key_state == Node.HostKeyState.PINNED and node.host_key_accepted_by == operator
    refused, event = AuditEvent.objects.filter(action="node.host_key_accepted").order_by("seq")
    assert refused.outcome == "denied" and "does not match" in refused.details["error"]
    assert event.outcome == "success"
    assert event.actor == operator and event.details == {"fingerprint": node.ssh_host_key_fingerprint}


def test_changed_host_key_warning_shows_both_fingerprints(operator, cluster):
    node = offered(Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11"), "SHA256:" + "o" * 43)
    services.accept_host_key(node, user=operator, fingerprint=node.offered_host_key_fingerprint)
    node = offered(node, "SHA256:" + "n" * 43)
    assert node.host_key_state == Node.HostKeyState.CHANGED
    page = client_for(operator).get(node.get_absolute_url()).content.decode()
    assert 'id="host-key-changed"' in page
    assert "SHA256:" + "o" * 43 in page and "SHA256:" + "n" * 43 in page
    client_for(operator).post(reverse("nodes:host-key-keep", args=[cluster.name, node.name]))
    node.refresh_from_db()
    assert node.host_key_state == Node.HostKeyState.PINNED and node.ssh_host_key_fingerprint == "SHA256:" + "o" * 43


# --- checks and removal --------------------------------------------------------------------


def test_check_is_queued_in_the_background_and_polled(operator, cluster, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    node = Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11")
    client = client_for(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("nodes:check", args=[cluster.name, node.name]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'hx-trigger="every 1s"' in response.content and b"Queued" in response.content
    node.refresh_from_db()
    assert node.check_status == Node.CheckStatus.QUEUED
    assert OrmQ.objects.filter(key="kubeboard").count() == 1
    assert AuditEvent.objects.get(action="node.check_requested").actor == operator
    # A second click while it is queued is refused, not queued twice.
    client.post(reverse("nodes:check", args=[cluster.name, node.name]))
    assert OrmQ.objects.count() == 1


def test_delete_only_when_not_joined(operator, cluster):
    node = Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11", status=Node.Status.JOINED)
    client = client_for(operator)
    url = reverse("nodes:delete", args=[cluster.name, node.name])
    client.post(url)
    assert Node.objects.filter(pk=node.pk).exists()
    Node.objects.filter(pk=node.pk).update(status=Node.Status.REACHABLE)
    assert client.get(url).status_code == 200
    assert client.post(url).status_code == 302
    assert not Node.objects.exists()
    refused, event = AuditEvent.objects.filter(action="node.deleted").order_by("seq")
    assert refused.outcome == "denied" and "remove it from the cluster" in refused.details["error"]
    assert event.outcome == "success"
    assert event.details["name"] == "cp1" and event.cluster == cluster

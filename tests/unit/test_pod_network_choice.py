"""Issue 20 item 1 in the UI: the pod network chosen on the new-cluster form (pinned versions from
addons.catalog, each refusal under the field), changed later on the cluster page (operators only,
audited), and the next step that installs it (or flags a cluster with none)."""

from __future__ import annotations

import re

import pytest

from addons import catalog
from audit.models import AuditEvent
from clusters.models import Cluster
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import CLUSTER_FORM
from tests.support.testbed_cluster import ready_cluster
from workflows import init as init_workflow

pytestmark = pytest.mark.django_db(transaction=True)

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOr9w8x1xVdS0k4pQm0c6oW6i8vJjIY5nEoQv7sJ8l7Q"
NEWEST_FLANNEL = catalog.newest(catalog.FLANNEL).version
NEWEST_CALICO = catalog.newest(catalog.CALICO).version


def create(client, user, **changes):
    data = dict(CLUSTER_FORM, name="net1", team=team_of(user).pk) | changes
    client.force_login(user)
    return client.post("/clusters/new/", {k: v for k, v in data.items() if v is not None})


def field_errors(response, field: str) -> list[str]:
    html = response.content.decode().replace("&#x27;", "'")
    return re.findall(rf'<p class="error" id="error-{field}">(.*?)</p>', html)


def test_the_form_offers_each_pinned_version_and_none_with_flannel_newest_chosen(client, operator):
    client.force_login(operator)
    html = client.get("/clusters/new/").content.decode()
    select = re.search(r'<select name="pod_network".*?</select>', html, re.S).group(0)
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select)
    assert [(value, label) for value, _, label in options] == [
        ("flannel v0.28.9", "Flannel v0.28.9 (newest)"),
        ("flannel v0.28.8", "Flannel v0.28.8"),
        ("calico v3.32.1", "Calico v3.32.1 (newest)"),
        ("custom", "Custom manifest: upload it, or give its https URL and SHA-256"),
        ("none", "None: I install a network add-on myself"),
    ]
    assert [value for value, selected, _ in options if selected] == [f"flannel {NEWEST_FLANNEL}"]
    # The custom manifest's fields follow the choice, and the form can carry a file.
    assert re.search(r'<form method="post" enctype="multipart/form-data" novalidate id="cluster-form">', html)
    names = re.findall(r'name="(pod_network|manifest_file|manifest_url|manifest_sha256|pod_network_registry)"', html)
    assert names == ["pod_network", "manifest_file", "manifest_url", "manifest_sha256", "pod_network_registry"]


@pytest.mark.parametrize(
    ("pod_subnet", "network", "version"),
    [("10.244.0.0/16", "flannel", NEWEST_FLANNEL), ("", "none", "")],
)
def test_without_a_choice_the_default_follows_the_pod_subnet(client, operator, pod_subnet, network, version):
    response = create(client, operator, pod_subnet=pod_subnet)
    assert response.status_code == 302, response.content.decode()[:2000]
    cluster = Cluster.objects.get(name="net1")
    assert (cluster.pod_network, cluster.pod_network_version, cluster.pod_network_registry) == (network, version, "")
    created = AuditEvent.objects.get(action="cluster.created")
    assert created.cluster_name == "net1"


def test_a_choice_and_a_registry_are_saved(client, operator):
    response = create(
        client, operator, pod_network=f"calico {NEWEST_CALICO}", pod_network_registry="registry.local:5000/mirror"
    )
    assert response.status_code == 302
    cluster = Cluster.objects.get(name="net1")
    assert (cluster.pod_network, cluster.pod_network_version) == ("calico", NEWEST_CALICO)
    assert cluster.pod_network_registry == "registry.local:5000/mirror"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"pod_subnet": "", "pod_network": "flannel v0.28.8"},
            "pod_network",
            "Flannel needs an IPv4 pod subnet: it writes it into net-conf.json and kube-controller-manager "
            "hands each node a slice of it (e.g. 10.244.0.0/16)",
        ),
        (
            {"pod_subnet": "", "service_subnet": "192.168.0.0/16", "pod_network": "calico v3.32.1"},
            "pod_network",
            "Calico's default pool (no pod subnet set) 192.168.0.0/16 overlaps the service subnet 192.168.0.0/16",
        ),
        (
            {"control_plane_endpoint": "10.244.3.7:6443"},
            "pod_network",
            "the pod subnet 10.244.0.0/16 holds the machine address 10.244.3.7",
        ),
        (
            {"pod_subnet": "", "control_plane_endpoint": "192.168.1.5:6443", "pod_network": "calico v3.32.1"},
            "pod_network",
            "Calico's default pool (no pod subnet set) 192.168.0.0/16 holds the machine address 192.168.1.5",
        ),
        (
            {"pod_network": "custom"},
            "manifest_file",
            "upload the manifest, or give its https URL and SHA-256",
        ),
        (
            {"pod_network": "custom", "manifest_url": "http://example.test/cni.yaml", "manifest_sha256": "0" * 64},
            "manifest_url",
            "http://example.test/cni.yaml is not an https:// URL; Kubeboard downloads only over TLS",
        ),
        (
            {"pod_network": "custom", "manifest_url": "https://example.test/cni.yaml"},
            "manifest_sha256",
            "give the manifest's SHA-256 with its URL (sha256sum prints it)",
        ),
        (
            {"pod_network": "custom", "manifest_url": "https://example.test/cni.yaml", "manifest_sha256": "abc"},
            "manifest_sha256",
            "a SHA-256 is 64 hexadecimal characters (as sha256sum prints it)",
        ),
        (
            {"pod_network_registry": "https://registry.local"},
            "pod_network_registry",
            "https://registry.local has a scheme; write the registry as an image reference starts, "
            "e.g. registry.local:5000",
        ),
    ],
)
def test_each_refusal_is_under_its_field_and_nothing_is_saved(client, operator, changes, field, message):
    response = create(client, operator, **changes)
    assert response.status_code == 400
    assert field_errors(response, field) == [message]
    assert not Cluster.objects.exists() and not AuditEvent.objects.filter(action="cluster.created").exists()


def test_none_needs_no_pod_subnet(client, operator):
    response = create(client, operator, pod_subnet="", pod_network="none")
    assert response.status_code == 302
    assert Cluster.objects.get(name="net1").pod_network == catalog.NONE


# --- on the cluster page ------------------------------------------------------------------------


@pytest.fixture
def running(operator):
    """A cluster with a real identity (CA key held), initialized, its one machine joined."""
    cluster = ready_cluster("live", "10.0.0.10:6443", team=team_of(operator), user=operator)
    Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.RUNNING, pod_network="")
    Node.objects.create(
        cluster=cluster,
        name="cp1",
        address="10.0.0.11",
        role=Node.Role.CONTROL_PLANE,
        status=Node.Status.JOINED,
        ssh_host_key=HOST_KEY,
        ssh_host_key_fingerprint="SHA256:abc",
    )
    return Cluster.objects.get(pk=cluster.pk)


def next_step(html: str) -> dict:
    card = re.search(r'<section class="card next-step".*?</section>', html, re.S).group(0)
    form = re.search(r'<form method="post" action="([^"]+)" id="next-step-form"', card)
    link = re.search(r'href="([^"]+)" id="next-step-action"', card)
    return {
        "stage": re.search(r'data-stage="([\w-]+)"', card).group(1),
        "title": re.search(r'<h2 id="next-step-title">(.*?)</h2>', card, re.S).group(1),
        "post": form.group(1) if form else None,
        "href": link.group(1) if link else None,
        "html": card,
    }


def page(client, user, cluster) -> str:
    client.force_login(user)
    response = client.get(f"/clusters/{cluster.name}/")
    assert response.status_code == 200
    return response.content.decode()


def test_only_an_operator_changes_the_pod_network_and_each_change_is_audited(client, running, operator, make_user):
    viewer = make_user("vera", team=team_of(operator).name, role="viewer")
    url = f"/clusters/{running.name}/pod-network-settings/"
    assert 'id="pod-network-settings"' not in page(client, viewer, running)
    assert client.post(url, {"pod_network": "calico v3.32.1"}).status_code == 403
    assert Cluster.objects.get(pk=running.pk).pod_network == ""
    assert not AuditEvent.objects.filter(action="cluster.pod_network_changed").exists()

    html = page(client, operator, running)
    assert 'id="pod-network-settings"' in html
    assert f'<option value="flannel {NEWEST_FLANNEL}" selected>' in html, "not chosen yet: the default is offered"
    response = client.post(url, {"pod_network": "calico v3.32.1", "pod_network_registry": "registry.local:5000"})
    assert response.status_code == 302 and response.url == f"/clusters/{running.name}/#pod-network"
    running.refresh_from_db()
    assert (running.pod_network, running.pod_network_version, running.pod_network_registry) == (
        "calico",
        "v3.32.1",
        "registry.local:5000",
    )
    record = AuditEvent.objects.get(action="cluster.pod_network_changed")
    assert (record.actor_name, record.outcome, record.cluster_name) == ("olivia", "success", "live")
    assert record.details == {
        "pod_network": {"from": "", "to": "calico"},
        "pod_network_version": {"from": "", "to": "v3.32.1"},
        "pod_network_registry": {"from": "", "to": "registry.local:5000"},
    }


def test_a_change_that_does_not_fit_is_refused_with_its_reason(client, running, operator):
    Cluster.objects.filter(pk=running.pk).update(pod_subnet="10.0.0.0/16")  # holds cp1's 10.0.0.11
    client.force_login(operator)
    response = client.post(f"/clusters/{running.name}/pod-network-settings/", {"pod_network": "flannel v0.28.8"})
    assert response.status_code == 302
    said = " ".join(str(m) for m in response.wsgi_request._messages)
    assert "Pod network: the pod subnet 10.0.0.0/16 holds the machine address 10.0.0.10" in said
    assert "holds the machine address 10.0.0.11" in said
    assert Cluster.objects.get(pk=running.pk).pod_network == ""
    assert not AuditEvent.objects.filter(action="cluster.pod_network_changed").exists()


def test_the_next_step_installs_the_chosen_network_then_says_it_runs(client, running, operator, make_user):
    step = next_step(page(client, operator, running))
    assert (step["stage"], step["title"]) == ("network", "Choose a pod network")
    assert step["href"] == f"/clusters/{running.name}/#pod-network"

    Cluster.objects.filter(pk=running.pk).update(pod_network="flannel", pod_network_version=NEWEST_FLANNEL)
    step = next_step(page(client, operator, running))
    assert (step["stage"], step["title"]) == ("network", "Install a pod network")
    assert step["post"] == f"/clusters/{running.name}/pod-network/"
    assert f"Install Flannel {NEWEST_FLANNEL}" in step["html"]
    viewer = make_user("vera", team=team_of(operator).name, role="viewer")
    assert next_step(page(client, viewer, running))["post"] is None, "a viewer gets no button"
    assert client.post(step["post"]).status_code == 403

    client.force_login(operator)
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    response = client.post(step["post"])
    operation = Operation.objects.get(kind="pod-network")
    assert response.status_code == 302 and response.url == operation.get_absolute_url()
    assert (operation.params["network"], operation.params["version"]) == ("flannel", NEWEST_FLANNEL)
    assert list(operation.phases.order_by("order").values_list("name", flat=True)) == ["apply", "rollout"]
    written = AuditEvent.objects.filter(seq__gt=before).values_list("action", "outcome", "object_id")
    assert list(written) == [("operation.queued", "success", str(operation.pk))]
    step = next_step(page(client, operator, running))
    assert step["title"] == "Wait: the pod network is being applied" and step["href"] == f"/operations/{operation.pk}/"

    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.SUCCEEDED)
    Cluster.objects.filter(pk=running.pk).update(pod_network_applied=f"flannel {NEWEST_FLANNEL}")
    html = page(client, operator, running)
    assert next_step(html)["title"] == f"Running with Flannel {NEWEST_FLANNEL}"
    assert f'<dd id="pod-network-applied">Flannel {NEWEST_FLANNEL}</dd>' in html


def test_none_is_flagged_and_the_install_is_refused(client, running, operator):
    Cluster.objects.filter(pk=running.pk).update(pod_network=catalog.NONE)
    html = page(client, operator, running)
    step = next_step(html)
    assert (step["stage"], step["title"]) == ("network", "This cluster has no pod network")
    assert 'id="pod-network-flag"' in html and "nodes on real machines stay NotReady" in html
    response = client.post(f"/clusters/{running.name}/pod-network/")
    assert response.status_code == 302
    said = " ".join(str(m) for m in response.wsgi_request._messages)
    assert "the pod network is None: Kubeboard applies only a pinned Flannel or Calico" in said
    assert not Operation.objects.filter(kind="pod-network").exists()
    refused = AuditEvent.objects.get(action="operation.queued", details__kind="pod-network")
    assert refused.outcome == "denied"


def test_init_applies_the_pod_network_right_after_kubeadms_addon_phase():
    names = [spec.name for spec in init_workflow.PHASES]
    assert names[names.index("addon") + 1] == "pod-network"
    assert names[-1] == "read-back", "the node is read back Ready once its network runs"


def test_a_bad_pod_subnet_is_one_mistake_not_two(operator):
    """The subnet's own mistake is the one shown: the pod network choice is not refused on top
    of it (the model's choices check once saw "flannel v0.28.9" unsplit)."""
    from clusters.forms import ClusterForm
    from tests.conftest import team_of

    form = ClusterForm(
        {
            "name": "one",
            "kubernetes_version": "v1.37.2",
            "control_plane_endpoint": "10.0.0.10:6443",
            "pod_subnet": "10.96.0.0/16",
            "service_subnet": "10.96.0.0/12",
            "dns_domain": "cluster.local",
            "image_repository": "registry.k8s.io",
            "encryption_algorithm": "ECDSA-P256",
            "team": team_of(operator).pk,
            "pod_network": "flannel v0.28.9",
        },
        user=operator,
    )
    assert not form.is_valid()
    assert "pod_subnet" in form.errors and "pod_network" not in form.errors, form.errors

"""The cluster page's Add-ons section (clusters/addons.py, kube/addons.py): states, drift with its
managers, and a page that never waits for, or fails with, the API server.

Real parts: the Django test client, the page's template, and real connections to API servers that
cannot answer (a closed loopback port; a listening one that never speaks TLS). The read of live
add-ons (Flannel, Calico, CoreDNS, kube-proxy on the test bed, drift made by hand and its fix) is
tests/e2e/test_pod_network_browser.py.
"""

from __future__ import annotations

import hashlib
import socket
import time
from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from django.test import Client

from addons import catalog, manifests
from clusters import addons
from clusters.models import Cluster, PodNetworkManifest
from kube import addons as kube_addons
from kube.addons import Workload, WorkloadRef
from kubeadm import pki
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities
from tests.support.services import free_port

FLANNEL_DS = WorkloadRef("DaemonSet", "kube-flannel", "kube-flannel-ds")


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


# --- what a read finds ---------------------------------------------------------------------------


def config_map(data: str, managed: list[dict]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kube-flannel-cfg", "namespace": "kube-flannel", "managedFields": managed},
        "data": {"net-conf.json": data, "cni-conf.json": "{}"},
    }


def test_drift_names_the_field_and_who_changed_it_when():
    wanted = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kube-flannel-cfg", "namespace": "kube-flannel"},
        "data": {"net-conf.json": '{"Network": "10.244.0.0/16"}', "cni-conf.json": "{}"},
    }
    # As the API server stores it after `kubectl edit`: Kubeboard's apply keeps cni-conf.json,
    # kubectl-edit's update took net-conf.json.
    live = config_map(
        '{"Network": "10.99.0.0/16"}',
        [
            {
                "manager": "kubeboard",
                "operation": "Apply",
                "time": "2026-12-06T20:00:00Z",
                "fieldsV1": {"f:data": {"f:cni-conf.json": {}}},
            },
            {
                "manager": "kubectl-edit",
                "operation": "Update",
                "time": "2026-12-06T21:30:05Z",
                "fieldsV1": {"f:data": {"f:net-conf.json": {}}},
            },
        ],
    )
    drift = kube_addons.object_drift(wanted, live, "ConfigMap kube-flannel/kube-flannel-cfg")
    assert drift is not None and not drift.missing
    (change,) = drift.fields
    assert change.path == "data.net-conf.json"
    assert change.found_text == '{"Network": "10.99.0.0/16"}'
    assert change.wanted_text == '{"Network": "10.244.0.0/16"}'
    assert change.managers == (
        kube_addons.Manager("kubectl-edit", "Update", datetime(2026, 12, 6, 21, 30, 5, tzinfo=UTC)),
    )
    # Unchanged: no drift. Deleted: missing.
    assert kube_addons.object_drift(wanted, config_map('{"Network": "10.244.0.0/16"}', []), "x") is None
    assert kube_addons.object_drift(wanted, None, "x") == kube_addons.ObjectDrift("x", missing=True)


def test_a_removed_field_is_owned_by_nobody():
    wanted = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": []}, "data": {}}
    (change,) = kube_addons.object_drift(wanted, live, "ConfigMap default/c").fields
    assert (change.path, change.found_text, change.managers) == ("data.a", "(removed)", ())
    assert change.unowned == "nobody: the field was removed"


def test_versions_are_the_image_tags():
    images = (
        "ghcr.io/flannel-io/flannel:v0.28.9",
        "registry.local:5000/calico/node:v3.32.1",
        "registry.local:5000/calico/cni",
        "registry.k8s.io/coredns/coredns:v1.12.1@sha256:abc",
        "ghcr.io/flannel-io/flannel:v0.28.9",
    )
    assert Workload(FLANNEL_DS, True, images=images).versions == ("v0.28.9", "v3.32.1", "latest", "v1.12.1")


def test_counts_of_a_daemonset_and_a_deployment():
    ds = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 3, "desiredNumberScheduled": 2, "numberReady": 2, "updatedNumberScheduled": 1},
    }
    assert kube_addons._counts("DaemonSet", ds) == (2, 2, 1, False)  # one Pod still runs the old spec
    ds["status"]["updatedNumberScheduled"] = 2
    assert kube_addons._counts("DaemonSet", ds) == (2, 2, 2, True)
    ds["metadata"]["generation"] = 4  # a new spec the controller has not seen yet
    assert kube_addons._counts("DaemonSet", ds)[3] is False
    deployment = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2, "replicas": 3},
    }
    assert kube_addons._counts("Deployment", deployment) == (2, 2, 2, False)  # an old replica still runs
    deployment["status"]["replicas"] = 2
    assert kube_addons._counts("Deployment", deployment) == (2, 2, 2, True)


def workload(ready: int = 2, *, desired: int = 2, current: bool = True, starting: bool = False, found: bool = True):
    return Workload(FLANNEL_DS, found, desired, ready, desired if current else 0, current, starting=starting)


@pytest.mark.parametrize(
    ("workloads", "drifted", "state"),
    [
        ([workload()], False, addons.HEALTHY),
        ([workload(), workload(found=False)], False, addons.NOT_INSTALLED),
        ([workload(1)], False, addons.DEGRADED),  # a Pod not ready for minutes
        ([workload(1, starting=True)], False, addons.ROLLING_OUT),  # a Pod just created
        ([workload(current=False)], False, addons.ROLLING_OUT),  # a new spec not on every Pod yet
        ([workload()], True, addons.DRIFTED),
        ([workload(1)], True, addons.DEGRADED),  # Pods down say more than a changed field
    ],
)
def test_states(workloads, drifted, state):
    drift = [kube_addons.ObjectDrift("ConfigMap kube-flannel/kube-flannel-cfg", missing=True)] if drifted else []
    assert addons.state_of(workloads, drift) == state


def test_the_pod_network_compared_is_what_was_applied_else_what_is_chosen():
    cluster = Cluster(pod_network=catalog.FLANNEL, pod_network_version="v0.28.9", pod_network_registry="r.local:5000")
    assert addons.applied_choice(cluster).version == "v0.28.9"
    cluster.pod_network_applied = "flannel v0.28.8"  # chosen v0.28.9 since, not applied yet
    assert (addons.applied_choice(cluster).network, addons.applied_choice(cluster).version) == ("flannel", "v0.28.8")
    assert addons.applied_choice(Cluster(pod_network=catalog.NONE)) is None
    assert addons.applied_choice(Cluster(pod_network="")) is None


CUSTOM = """apiVersion: v1
kind: Namespace
metadata:
  name: kb-cni
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kb-cni-node
  namespace: kb-cni
spec:
  selector:
    matchLabels: {app: kb-cni}
  template:
    metadata:
      labels: {app: kb-cni}
    spec:
      containers:
      - name: cni
        image: quay.io/example/cni:v1.2.3
"""


@pytest.mark.django_db
def test_a_custom_manifest_is_compared_while_it_is_the_one_rolled_out():
    digest = hashlib.sha256(CUSTOM.encode()).hexdigest()
    version = manifests.custom_version(digest)
    cluster = make_cluster(
        "own",
        pod_network=catalog.CUSTOM,
        pod_network_version=version,
        pod_network_applied=f"custom {version}",
        pod_network_registry="registry.local:5000",
    )
    stored = PodNetworkManifest.objects.create(cluster=cluster, text=CUSTOM, sha256=digest, source="cni.yaml")
    choice = addons.applied_choice(cluster)
    assert (choice.network, choice.version) == (catalog.CUSTOM, version)
    objects = addons.applied_objects(cluster, choice)
    assert [manifests.describe(o) for o in objects] == ["Namespace kb-cni", "DaemonSet kb-cni/kb-cni-node"]
    assert objects[1]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local:5000/example/cni:v1.2.3"
    assert addons._workloads_of(objects) == [WorkloadRef("DaemonSet", "kb-cni", "kb-cni-node")]
    assert addons.label_of(choice) == f"Custom manifest {version}"

    # Another manifest stored since, not applied yet: what was rolled out cannot be compared, and
    # the pod network says so (CoreDNS and kube-proxy are read all the same).
    changed = CUSTOM.replace("v1.2.3", "v1.2.4")
    stored.text, stored.sha256 = changed, hashlib.sha256(changed.encode()).hexdigest()
    stored.save()
    with pytest.raises(manifests.ManifestError, match="no longer the one stored"):
        addons.applied_objects(cluster, choice)
    shown = addons._pod_network(cluster, None, (), choice, "What Kubeboard applied cannot be compared: x")
    assert (shown.state, shown.fix) == (addons.NOT_MANAGED, "What Kubeboard applied cannot be compared: x")


# --- the page ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


@pytest.fixture
def viewer(make_user):
    return make_user("vera", role="viewer")


def client_of(user) -> Client:
    made = Client()
    made.force_login(user)
    return made


def running_cluster(viewer, ca, endpoint: str, **fields) -> Cluster:
    cluster = make_cluster(
        "up",
        team=team_of(viewer),
        control_plane_endpoint=endpoint,
        status=Cluster.Status.RUNNING,
        pod_network=catalog.FLANNEL,
        pod_network_version="v0.28.9",
        pod_network_applied="flannel v0.28.9",
        **fields,
    )
    store_authorities(cluster, {"ca": ca})
    return cluster


@pytest.mark.django_db
def test_the_page_shows_the_section_and_reads_nothing_itself(viewer, ca):
    # A listening port that never answers: the page must not even connect to it (the section is
    # read by its own request, after the page is shown).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.setblocking(False)
        cluster = running_cluster(viewer, ca, f"127.0.0.1:{silent.getsockname()[1]}")
        response = client_of(viewer).get(f"/clusters/{cluster.name}/")
        with pytest.raises(BlockingIOError):
            silent.accept()  # no connection is waiting: the page asked the API server nothing
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="addons"' in page and f'hx-get="/clusters/{cluster.name}/addons/"' in page
    assert '<a href="#addons">Add-ons</a>' in page


@pytest.mark.django_db
def test_a_cluster_not_running_says_so_and_asks_nothing(viewer):
    cluster = make_cluster("new", team=team_of(viewer), control_plane_endpoint="10.213.43.250:6443")
    response = client_of(viewer).get(f"/clusters/{cluster.name}/addons/")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'data-read="unavailable"' in text
    assert f"cluster {cluster.name} is not initialized" in text
    assert "hx-trigger" not in text  # nothing will change by asking again


@pytest.mark.django_db
def test_an_unreachable_api_server_is_said_not_a_500_and_read_again(viewer, ca):
    port = free_port()
    cluster = running_cluster(viewer, ca, f"127.0.0.1:{port}")
    client = client_of(viewer)
    response = client.get(f"/clusters/{cluster.name}/addons/")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'data-read="error"' in text and 'id="addons-unreachable"' in text
    assert f"127.0.0.1:{port}" in text and "is unreachable" in text
    assert 'hx-trigger="every 5s"' in text  # the section asks again while open
    # Within CACHE_SECONDS every viewer gets the same answer without a new connection...
    key = addons._cache_key(cluster)
    assert cache.get(key) is not None
    # ...until an operation starts or ends (an apply, a join): then it is read again at once.
    operation = Operation.objects.create(cluster=cluster, kind="pod-network", status=Operation.Status.RUNNING)
    assert addons._cache_key(cluster) != key
    key = addons._cache_key(cluster)
    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.SUCCEEDED)
    assert addons._cache_key(cluster) != key


@pytest.mark.django_db
def test_a_silent_api_server_costs_the_section_its_budget_only(viewer, ca, monkeypatch):
    monkeypatch.setattr(kube_addons, "BUDGET", 2.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        cluster = running_cluster(viewer, ca, f"127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        response = client_of(viewer).get(f"/clusters/{cluster.name}/addons/")
        took = time.monotonic() - started
    assert response.status_code == 200
    assert 'id="addons-unreachable"' in response.content.decode()
    # The budget, plus the one request under way when it ran out (its timeouts are cut to what
    # was left) and the urllib3 pool's single reconnect.
    assert took < 10, f"the section took {took:.1f} s (without the budget: the client's 30 s read timeout)"


@pytest.mark.django_db
def test_a_person_who_may_not_see_the_cluster_gets_404(viewer, ca, make_user):
    cluster = running_cluster(viewer, ca, f"127.0.0.1:{free_port()}")
    stranger = make_user("sam", team="elsewhere", role="viewer")
    assert client_of(stranger).get(f"/clusters/{cluster.name}/addons/").status_code == 404

"""Issue 20 on the test bed: pod network add-ons applied with server-side apply, proven against a
real API server, controller manager and scheduler, with kubemark's hollow kubelets as the nodes.

ONE boot (CI time): node1 runs a full ``kubeadm init`` with a hollow kubelet; Kubeboard adopts it
through admin.conf and runs its pod-network operation in this process. The hollow kubelet runs
DaemonSet Pods with its fake runtime and reports them Ready: kubemark gives it
``prober/testing.FakeManager``, whose UpdatePodStatus marks every container ready (probes never
run), and fake hostPath/ConfigMap volumes — so this proves the API side only, never packets.

What is proven: the stored objects equal the pinned manifest plus only the documented
substitutions; re-applying changes no resourceVersion; an upgrade to the second pinned Flannel
changes exactly the objects whose manifest changed; drift made by hand with the kubernetes
client is seen with its manager and fixed by a re-apply; the DaemonSet rolls out on a worker
joined after the add-on; Calico's 38 objects (CRDs included) apply and roll out, and switching
to Calico deletes what Kubeboard applied for Flannel (one event each). A custom
manifest downloaded from an https URL (a real HTTPS server on 127.0.0.1) is refused on the form
with a wrong checksum or a YAML mistake before anything reaches the API server, is applied as
written otherwise, and a second manifest that drops an object deletes exactly that object (an
event for it), leaving alone an object made by hand and one whose managers no longer include
Kubeboard's apply.
"""

from __future__ import annotations

import hashlib
import os
import time

import kubernetes.client
import pytest

import kube
from addons import catalog, manifests
from clusters.action_forms import PodNetworkForm
from clusters.models import Cluster, PodNetworkManifest
from clusters.services import save_pod_network
from kube import apply as kube_apply
from operations.models import Event, Operation
from operations.runner import run_operation
from tests.conftest import team_of
from tests.support.https_server import Route, https_server
from tools.testbed.binaries import selected_version
from tools.testbed.cluster import ControlPlane, kubeadm_join, new_bootstrap_token
from tools.testbed.testing import require_binaries, sandbox, unavailable
from workflows.adoption import adopt_cluster
from workflows.network import read_drift, rollouts, start_pod_network

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(900)]

NAME = "kbtbn"
SUBNET = "10.213.50.0/24"
POD_SUBNET = "10.200.0.0/16"  # not flannel's 10.244.0.0/16, so the substitution shows


@pytest.fixture(scope="module")
def bed():
    bins = require_binaries()
    if not os.access(bins / "kubemark", os.X_OK):
        unavailable(f"{bins}/kubemark missing (tools/setup-testbed.sh builds it)")
    with sandbox(NAME, SUBNET, size=2) as sb:
        for node in sb.nodes:
            node.start_runner(bins, kubelet=True)
        cp = ControlPlane(node=sb.node(1), bin_dir=bins, version=selected_version(), token=new_bootstrap_token())
        cp.kubeadm_init()
        yield sb, cp, bins


@pytest.fixture
def cluster(bed, transactional_db, make_user):
    _, cp, _ = bed
    admin = make_user("ada", role="admin")
    adopted = adopt_cluster(name="net", team=team_of(admin), kubeconfig=cp.admin_conf.read_text(), user=admin)
    adopted.admin = admin
    adopted.pod_subnet = POD_SUBNET
    adopted.save(update_fields=["pod_subnet"])
    return adopted


def run(cluster, network: str, version: str = "", **params) -> Operation:
    operation = start_pod_network(cluster, network, version=version, **params)
    run_operation(operation.pk)
    operation.refresh_from_db()
    if operation.status != Operation.Status.SUCCEEDED:
        lines = Event.objects.filter(operation=operation).order_by("seq").values_list("message", flat=True)
        pytest.fail(f"operation {operation.status}:\n" + "\n".join(lines))
    return operation


PRUNE_ACTIONS = ("deleted", "gone", "kept")


def object_events(operation: Operation) -> dict[str, str]:
    events = Event.objects.filter(operation=operation, phase="apply").order_by("seq")
    return {e.data["object"]: e.data["action"] for e in events if e.data and "object" in e.data}


def applied_events(operation: Operation) -> dict[str, str]:
    return {k: v for k, v in object_events(operation).items() if v not in PRUNE_ACTIONS}


def pruned_events(operation: Operation) -> dict[str, str]:
    return {k: v for k, v in object_events(operation).items() if v in PRUNE_ACTIONS}


def live_objects(cluster, objects) -> dict[str, dict]:
    with kube.connect(cluster, "read") as client:
        discovery = kube_apply.Discovery(client)
        return {manifests.describe(o): kube_apply.get_object(client, discovery.path(o)) for o in objects}


def upstream(pinned: catalog.Pinned) -> list[dict]:
    return manifests.parse(pinned.text(), source=pinned.file)


def test_flannel_install_diff_idempotence_upgrade_drift_and_a_late_worker(bed, cluster):
    sb, cp, bins = bed
    old, new = (catalog.pinned(catalog.FLANNEL, v) for v in catalog.versions(catalog.FLANNEL)[-2:])

    started = time.monotonic()
    operation = run(cluster, catalog.FLANNEL, old.version)
    install_seconds = time.monotonic() - started
    # One event per object, each created.
    assert applied_events(operation) == {manifests.describe(o): "created" for o in upstream(old)}

    # The diff test: the upstream manifest and what Kubeboard applies differ only by the
    # substitution, and the API server stores exactly what Kubeboard applied.
    wanted = manifests.render(manifests.Choice(catalog.FLANNEL, old.version), POD_SUBNET)
    differences = [
        (manifests.describe(u), path, was, now)
        for u, w in zip(upstream(old), wanted, strict=True)
        for path, was, now in kube_apply.differences(u, w)
    ] + [
        (manifests.describe(w), path, None, None)
        for u, w in zip(upstream(old), wanted, strict=True)
        for path, _, _ in kube_apply.differences(w, u)
        if path != "data.net-conf.json"
    ]
    assert len(differences) == 1
    (what, path, was, now) = differences[0]
    assert (what, path) == ("ConfigMap kube-flannel/kube-flannel-cfg", "data.net-conf.json")
    assert was.replace('"Network": "10.244.0.0/16"', f'"Network": "{POD_SUBNET}"') == now
    live = live_objects(cluster, wanted)
    for obj in wanted:
        # status is the API server's (a manifest's status block is ignored on apply)
        assert kube_apply.drift(obj, live[manifests.describe(obj)]) == [], manifests.describe(obj)
        fields = live[manifests.describe(obj)]["metadata"]["managedFields"]
        assert any(f["manager"] == "kubeboard" and f["operation"] == "Apply" for f in fields)
    assert read_drift(cluster, manifests.Choice(catalog.FLANNEL, old.version)) == []

    # Re-applying is idempotent: every object unchanged, no resourceVersion moves.
    before = {k: v["metadata"]["resourceVersion"] for k, v in live.items()}
    operation = run(cluster, catalog.FLANNEL, old.version)
    assert set(applied_events(operation).values()) == {"unchanged"}
    after = {k: v["metadata"]["resourceVersion"] for k, v in live_objects(cluster, wanted).items()}
    assert after == before

    # Upgrade: only the objects whose manifest changed get a new resourceVersion.
    new_wanted = manifests.render(manifests.Choice(catalog.FLANNEL, new.version), POD_SUBNET)
    changed = {manifests.describe(n) for o, n in zip(wanted, new_wanted, strict=True) if o != n}
    assert changed == {"DaemonSet kube-flannel/kube-flannel-ds"}
    operation = run(cluster, catalog.FLANNEL, new.version)
    events = applied_events(operation)
    assert {k for k, v in events.items() if v != "unchanged"} == changed  # nothing dropped, nothing deleted
    inventory = Cluster.objects.get(pk=cluster.pk).pod_network_inventory
    assert [manifests.describe(e) for e in inventory] == [manifests.describe(o) for o in new_wanted]
    upgraded = live_objects(cluster, new_wanted)
    moved = {k for k, v in upgraded.items() if v["metadata"]["resourceVersion"] != before[k]}
    assert moved == changed
    ds = upgraded["DaemonSet kube-flannel/kube-flannel-ds"]
    assert kube_apply.differences(new_wanted[-1], ds) == []
    assert [c["image"] for c in ds["spec"]["template"]["spec"]["containers"]] == ["ghcr.io/flannel-io/flannel:v0.28.9"]

    # Drift by hand (the kubernetes client, as kubectl edit would): seen with its manager, then fixed.
    with kube.connect(cluster, "edit by hand") as client:
        client.user_agent = "kubectl-edit"
        kubernetes.client.CoreV1Api(client).patch_namespaced_config_map(
            "kube-flannel-cfg",
            "kube-flannel",
            {"data": {"net-conf.json": '{"Network": "10.99.0.0/16"}'}},
            field_manager="kubectl-edit",
        )
    choice = manifests.Choice(catalog.FLANNEL, new.version)
    drifted = read_drift(cluster, choice)
    assert [d.description for d in drifted] == ["ConfigMap kube-flannel/kube-flannel-cfg"]
    assert [(c.path, c.managers) for c in drifted[0].drift] == [("data.net-conf.json", ("kubectl-edit",))]
    operation = run(cluster, catalog.FLANNEL, new.version)
    assert applied_events(operation)["ConfigMap kube-flannel/kube-flannel-cfg"] == "configured"
    assert read_drift(cluster, choice) == []

    # A worker joined after the add-on gets its Pod, and the rollout waits for it.
    kubeadm_join(sb.node(2), bins, cp.join_command())
    deadline = time.monotonic() + 120
    while True:
        state = {r.description: r for r in rollouts(cluster, new_wanted)}["DaemonSet kube-flannel/kube-flannel-ds"]
        if (state.ok and state.desired == 2) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert state.ok and state.desired == state.ready == 2, state
    run(cluster, catalog.FLANNEL, new.version)  # its rollout phase sees both nodes ready
    print(f"flannel install with rollout: {install_seconds:.1f} s")


def test_calico_applies_crds_and_rolls_out_and_flannel_is_pruned(bed, cluster):
    # A cluster that rolled out Flannel before Kubeboard kept an inventory: the pinned version it
    # records stands for what was applied, and switching to Calico deletes Flannel's objects.
    flannel = catalog.newest(catalog.FLANNEL)
    Cluster.objects.filter(pk=cluster.pk).update(pod_network_applied=f"flannel {flannel.version}")
    operation = run(cluster, catalog.CALICO, image_registry="registry.example:5000")
    pinned = catalog.pinned(catalog.CALICO)
    assert len(applied_events(operation)) == len(upstream(pinned)) == 38
    flannel_objects = manifests.render(manifests.Choice(catalog.FLANNEL, flannel.version), POD_SUBNET)
    # "deleted" after the Flannel test; "gone" when this test runs alone.
    assert set(pruned_events(operation)) == {manifests.describe(o) for o in flannel_objects}
    assert set(pruned_events(operation).values()) <= {"deleted", "gone"}
    for description, obj in live_objects(cluster, flannel_objects).items():
        assert obj is None or obj["metadata"].get("deletionTimestamp"), description
    wanted = manifests.render(manifests.Choice(catalog.CALICO, image_registry="registry.example:5000"), POD_SUBNET)
    live = live_objects(cluster, wanted)
    for obj in wanted:
        # status is the API server's (a manifest's status block is ignored on apply)
        assert kube_apply.drift(obj, live[manifests.describe(obj)]) == [], manifests.describe(obj)
    node = live["DaemonSet kube-system/calico-node"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": POD_SUBNET} in node["env"]
    assert node["image"] == "registry.example:5000/calico/node:v3.32.1"
    assert all(r.ok for r in rollouts(cluster, wanted))


def custom_manifest(config_maps: dict[str, str]) -> bytes:
    """A small custom manifest: a Namespace, a ServiceAccount and ConfigMaps (name -> value)."""
    documents = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kb-custom\n  labels:\n    app: kb-cni\n",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: kb-cni\n  namespace: kb-custom\n",
    ] + [
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: kb-custom\ndata:\n  v: {value!r}\n"
        for name, value in config_maps.items()
    ]
    return "---\n".join(documents).encode()


def choose_custom(cluster, url: str, sha256: str) -> PodNetworkForm:
    """The cluster page's Pod network form, as its view runs it (the download happens here)."""
    form = PodNetworkForm({"pod_network": "custom", "manifest_url": url, "manifest_sha256": sha256}, instance=cluster)
    if form.is_valid():
        save_pod_network(form, user=cluster.admin)
    return form


def test_a_custom_manifest_from_a_url_is_checked_applied_and_what_it_drops_is_pruned(
    bed, cluster, tmp_path, monkeypatch
):
    first = custom_manifest({"kept": "1", "dropped": "2", "taken-over": "3"})
    second = custom_manifest({"kept": "changed"})
    broken = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: kb-custom}\n---\napiVersion: v1\nkind: x\n  b: [\n"
    digest = {name: hashlib.sha256(data).hexdigest() for name, data in (("first", first), ("second", second))}
    routes = {"/first.yaml": Route(first), "/second.yaml": Route(second), "/broken.yaml": Route(broken)}
    started = time.monotonic()
    with https_server(tmp_path, routes) as served:
        monkeypatch.setenv("SSL_CERT_FILE", str(served.ca_file))

        # Refused on the form, before anything is stored or reaches the API server.
        form = choose_custom(cluster, served.url("/first.yaml"), digest["second"])
        assert f"has SHA-256 {digest['first']}, not the {digest['second']} given" in form.errors["manifest_url"][0]
        form = choose_custom(cluster, served.url("/broken.yaml"), hashlib.sha256(broken).hexdigest())
        assert "broken.yaml: document 2 (from line 5), line 7" in form.errors["manifest_url"][0], form.errors
        assert not PodNetworkManifest.objects.exists()
        with kube.connect(cluster, "read") as client:
            core = kubernetes.client.CoreV1Api(client)
            assert "kb-custom" not in {n.metadata.name for n in core.list_namespace().items}

        # Applied as written: one event per object, the API server holds exactly the manifest.
        assert choose_custom(cluster, served.url("/first.yaml"), digest["first"]).is_valid()
        operation = run(cluster, catalog.CUSTOM)
        objects = manifests.parse(first)
        assert applied_events(operation) == {manifests.describe(o): "created" for o in objects}
        live = live_objects(cluster, objects)
        assert all(kube_apply.drift(o, live[manifests.describe(o)]) == [] for o in objects)
        assert Cluster.objects.get(pk=cluster.pk).pod_network_applied == f"custom sha256:{digest['first'][:16]}"

        # Someone makes an object by hand in the same namespace, and takes one of Kubeboard's
        # over (its managedFields cleared, as the API documents): neither is Kubeboard's to delete.
        with kube.connect(cluster, "by hand") as client:
            core = kubernetes.client.CoreV1Api(client)
            core.create_namespaced_config_map(
                "kb-custom", {"metadata": {"name": "by-hand"}, "data": {"v": "x"}}, field_manager="kubectl-create"
            )
            core.patch_namespaced_config_map(
                "taken-over", "kb-custom", [{"op": "replace", "path": "/metadata/managedFields", "value": [{}]}]
            )

        # The second manifest drops ConfigMap dropped: deleted, with its event; the rest as it says.
        assert choose_custom(cluster, served.url("/second.yaml"), digest["second"]).is_valid()
        operation = run(cluster, catalog.CUSTOM)
    assert applied_events(operation) == {
        "Namespace kb-custom": "unchanged",
        "ServiceAccount kb-custom/kb-cni": "unchanged",
        "ConfigMap kb-custom/kept": "configured",
    }
    assert pruned_events(operation) == {
        "ConfigMap kb-custom/taken-over": "kept",
        "ConfigMap kb-custom/dropped": "deleted",
    }
    with kube.connect(cluster, "read") as client:
        names = {
            c.metadata.name for c in kubernetes.client.CoreV1Api(client).list_namespaced_config_map("kb-custom").items
        }
    assert names == {"kept", "by-hand", "taken-over", "kube-root-ca.crt"}
    assert [e["metadata"]["name"] for e in Cluster.objects.get(pk=cluster.pk).pod_network_inventory] == [
        "kb-custom",
        "kb-cni",
        "kept",
    ]
    # Applying it again deletes nothing more and changes nothing.
    operation = run(cluster, catalog.CUSTOM)
    assert set(applied_events(operation).values()) == {"unchanged"} and pruned_events(operation) == {}
    print(f"custom manifest: refusals, install, prune and re-apply: {time.monotonic() - started:.1f} s")

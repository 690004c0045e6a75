"""Issue 20's first Done-when in Chromium: a cluster created from the UI with Flannel and one
created with Calico each end with the add-on rolled out on all nodes and shown healthy on the
cluster page's Add-ons section; drift made by hand then shows there with its manager, and the
section's Pod network action fixes it.

ONE sandbox of 4 machines holds both clusters (node1 + node2: Flannel, node3 + node4: Calico),
each created with the new-cluster form, initialized and joined by clicks, the two inits and the
two joins running side by side (two workers). The hollow kubelets report the add-ons' Pods Ready
(kubemark's fake prober, see tests/e2e/test_pod_network.py): the API side, never packets.

Run it in its own pytest process: ``pytest -m browser -p no:cacheprovider tests/e2e/test_pod_network_browser.py``.
"""

from __future__ import annotations

import time

import kubernetes.client
import pytest

import kube
from clusters.models import Cluster
from nodes.models import Node
from tests.e2e.test_browser import browser_page  # noqa: F401 (the Chromium fixture)
from tests.e2e.test_engine_browser import wait_succeeded
from tests.support.testbed_cluster import TESTBED_IGNORE_PREFLIGHT, add_machine, blank_machines
from tests.support.web import log_in

pytestmark = [pytest.mark.cluster, pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(900)]

NAME, SUBNET = "kbtbnw", "10.213.43.0/24"
# cluster -> (the form's pod network choice, control plane index, worker index, its workloads)
CLUSTERS = {
    "flan": ("flannel v0.28.9", 1, 2, {"kube-flannel-ds": "2/2"}),
    "cali": ("calico v3.32.1", 3, 4, {"calico-node": "2/2", "calico-kube-controllers": "1/1"}),
}
ROW = "#addons-table tr[data-addon='{}']"


def wait_state(page, base: str, cluster: str, addon: str, state: str, timeout: float) -> None:
    """Open the cluster page until the Add-ons section shows ``addon`` in ``state`` (the section
    reads again by itself while something rolls out; a settled one is read again on a reload)."""
    deadline = time.monotonic() + timeout
    while True:
        # No #fragment: going to the URL the tab is on plus a fragment would only scroll, not reload.
        page.goto(f"{base}/clusters/{cluster}/")
        page.wait_for_selector("#addons-read:not([data-read=pending])", timeout=30_000)
        try:
            page.wait_for_selector(f"{ROW.format(addon)}[data-state='{state}']", timeout=15_000)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise AssertionError(f"{cluster}: {addon} not {state}:\n{page.inner_text('#addons')}") from None


def test_flannel_and_calico_clusters_from_the_ui_end_healthy_on_the_cluster_page(
    stack_factory,
    operator,
    browser_page,  # noqa: F811
):
    started = time.monotonic()
    page = browser_page
    with blank_machines(NAME, SUBNET, 4) as sb:
        stack = stack_factory(workers=2)  # the two clusters' inits, then joins, side by side
        log_in(page, stack.http, operator.username, "pw-" + operator.username)

        # New cluster, twice: the pod network chosen in the form.
        for name, (network, cp, worker, _) in CLUSTERS.items():
            page.goto(f"{stack.http}/clusters/new/")
            page.fill("#id_name", name)
            page.fill("#id_control_plane_endpoint", f"{sb.node(cp).address}:6443")
            page.select_option("#id_pod_network", network)
            page.click("#cluster-form button[type=submit]")
            page.wait_for_url("**/operations/*/")
            wait_succeeded(page, stack, 120_000)
            cluster = Cluster.objects.get(name=name)
            assert (cluster.pod_network, cluster.pod_network_version) == tuple(network.split(" "))
            # What the test bed needs besides (the walkthrough test sets these through the page).
            Cluster.objects.filter(pk=cluster.pk).update(ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT)
            add_machine(cluster, sb, cp, user=operator, control_plane=True)
            add_machine(cluster, sb, worker, user=operator)

        # Initialize both by clicks, then wait for both: each init's pod-network phase applies
        # the add-on and waits for it on the control plane.
        def start(button: str) -> str:
            page.click(button)
            page.wait_for_url("**/operations/*/")
            return page.url

        inits = {}
        for name, (_, cp, _, _) in CLUSTERS.items():
            page.goto(f"{stack.http}/clusters/{name}/")
            page.select_option("#id_node", label=f"node{cp} ({sb.node(cp).address})")
            inits[name] = start("#initialize")
        for url in inits.values():
            page.goto(url)
            wait_succeeded(page, stack, 420_000)

        # Join each worker by clicks.
        joins = {}
        for name, (_, _, worker, _) in CLUSTERS.items():
            page.goto(f"{stack.http}/clusters/{name}/")
            node = Node.objects.get(cluster__name=name, name=f"node{worker}")
            page.check(f"#join-workers-form input[name=nodes][value='{node.pk}']")
            joins[name] = start("#join-workers")
        for url in joins.values():
            page.goto(url)
            wait_succeeded(page, stack, 300_000)

        # Each cluster page: the add-on rolled out on both nodes and shown healthy, with CoreDNS
        # and kube-proxy.
        for name, (network, _, _, workloads) in CLUSTERS.items():
            wait_state(page, stack.http, name, "pod-network", "healthy", 180)
            row = page.locator(ROW.format("pod-network"))
            shown = {
                w.get_attribute("data-workload"): w.locator(".addon-counts").inner_text()
                for w in row.locator(".addon-workload").all()
            }
            assert shown == workloads, (name, shown)
            assert row.locator(".addon-version").inner_text() == network.split(" ")[1]
            assert "applied by Kubeboard" in row.inner_text()
            for addon in ("coredns", "kube-proxy"):
                wait_state(page, stack.http, name, addon, "healthy", 60)
            assert page.locator(ROW.format("kube-proxy")).locator(".addon-counts").inner_text() == "2/2"
            assert page.locator(".addon-drift, .addon-fix, .addon-problems").count() == 0, "nothing to fix"

        # Drift by hand (as `kubectl edit` would) shows with its field and manager; the section's
        # Pod network action re-applies, and the add-on is healthy again.
        flan = Cluster.objects.get(name="flan")
        with kube.connect(flan, "edit by hand") as client:
            kubernetes.client.CoreV1Api(client).patch_namespaced_config_map(
                "kube-flannel-cfg",
                "kube-flannel",
                {"data": {"net-conf.json": '{"Network": "10.99.0.0/16"}'}},
                field_manager="kubectl-edit",
            )
        wait_state(page, stack.http, "flan", "pod-network", "drifted", 60)
        details = page.inner_text("[data-addon-details='pod-network']")
        assert "ConfigMap kube-flannel/kube-flannel-cfg" in details and "data.net-conf.json" in details, details
        assert page.inner_text(".addon-manager") == "kubectl-edit"
        page.click("#addons-reapply button[type=submit]")
        page.wait_for_url("**/operations/*/")
        wait_succeeded(page, stack, 300_000)
        wait_state(page, stack.http, "flan", "pod-network", "healthy", 60)
    print(f"\ntwo clusters from the UI, Flannel and Calico, healthy, drift fixed: {time.monotonic() - started:.0f} s")

"""A person in Chromium builds a cluster on blank test-bed machines: adds the machines, accepts
their host keys, sets the preflight ignore list, clicks Initialize and watches kubeadm's phases
complete live, then joins a worker while the cluster page follows the node's state by itself.

Run it in its own pytest process: ``pytest -m browser -p no:cacheprovider tests/e2e/test_engine_browser.py``.
"""

from __future__ import annotations

import pytest

from nodes.models import Node
from tests.conftest import team_of
from tests.e2e.test_browser import browser_page  # noqa: F401 (the Chromium fixture)
from tests.support.testbed_cluster import (
    TESTBED_CONTROL_PLANE_EXTRA,
    TESTBED_IGNORE_PREFLIGHT,
    authorize,
    blank_machines,
    machine_fingerprint,
    ready_cluster,
)
from tests.support.web import log_in

pytestmark = [pytest.mark.cluster, pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(600)]


def wait_succeeded(page, stack, timeout: int) -> None:
    """Wait for the operation page to show success; on failure say what the operation says."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from operations.models import Operation

    try:
        page.wait_for_selector("#operation-status[data-status=succeeded]", timeout=timeout)
    except PlaywrightTimeout:
        operation = Operation.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
        last = list(operation.events.order_by("-seq").values_list("message", flat=True)[:20])
        raise AssertionError(
            f"{operation} {operation.status}: {operation.error}\n{last}\n{stack.logs()[-3000:]}"
        ) from None


def add_machine_in_the_ui(page, base: str, sb, index: int, ignore: str = "", role: str = "worker") -> None:
    machine = sb.node(index)
    page.goto(f"{base}/clusters/zeta/")
    page.click("#add-machine")
    page.fill("#id_name", machine.name)
    page.fill("#id_address", machine.address)
    page.select_option("#id_role", role)  # Initialize offers control planes only
    page.fill("#id_ignore_preflight_errors", ignore)
    page.click("main button[type=submit]")
    page.wait_for_url(f"**/clusters/zeta/nodes/{machine.name}/")
    page.click("#check-machine")
    # The check runs in the worker; the offered fingerprint is compared with the machine's own.
    # It stops at the host key no one has accepted yet; the page shows it and Accept without a reload.
    page.wait_for_selector("#check-status.status-hostkey-offered", timeout=60_000)
    assert page.get_attribute("#host-key-state", "class").endswith("status-hostkey-offered")
    assert page.inner_text("#offered-fingerprint") == machine_fingerprint(sb, index)
    page.click("#accept-host-key")
    page.wait_for_selector("#host-key-state.status-hostkey-pinned")


def test_add_machines_initialize_and_join_a_worker_in_the_browser(stack_factory, operator, browser_page, tmp_path):  # noqa: F811
    page = browser_page
    with blank_machines("kbtbj6", "10.213.76.0/24", 2) as sb:
        ready_cluster("zeta", f"{sb.node(1).address}:6443", team=team_of(operator), user=operator)
        stack = stack_factory()
        log_in(page, stack.http, operator.username, "pw-" + operator.username)

        # The cluster's key pair, put on the machines by their owner. The page leads with it as its
        # next step; that step's button generates it and the machines section then shows the key.
        page.goto(f"{stack.http}/clusters/zeta/")
        assert page.inner_text("#next-step-title") == "Generate the cluster's SSH key"
        page.click("#next-step-action")
        public_key = page.locator("#cluster-public-key")
        public_key.wait_for()  # visible
        authorize(sb, public_key.inner_text())
        # The first control plane also pulls images, which cannot work on the test bed.
        add_machine_in_the_ui(
            page, stack.http, sb, 1, ignore=", ".join(TESTBED_CONTROL_PLANE_EXTRA), role="control-plane"
        )
        add_machine_in_the_ui(page, stack.http, sb, 2)

        # The preflight checks that cannot pass on the test bed are ignored, as a setting.
        page.goto(f"{stack.http}/clusters/zeta/")
        page.click("#engine-settings summary")
        page.fill("#id_ignore_preflight_errors", ", ".join(TESTBED_IGNORE_PREFLIGHT))
        page.click("#engine-settings button[type=submit]")
        assert "Settings saved" in page.inner_text("main")

        page.select_option("#id_node", label=f"node1 ({sb.node(1).address})")
        page.click("#initialize")
        page.wait_for_url("**/operations/*/")
        initial = page.get_attribute("#operation-status", "data-status")
        page.evaluate(
            """() => { window.seen = new Set();
              new MutationObserver(() => document.querySelectorAll('.phase').forEach(
                p => window.seen.add(p.dataset.phase + ':' + p.dataset.status)))
              .observe(document.getElementById('pipeline'), {subtree: true, attributes: true, childList: true}); }"""
        )
        wait_succeeded(page, stack, 240_000)
        assert initial in {"queued", "running"}, "the page opened before the work finished"
        statuses = page.eval_on_selector_all(
            ".phase", "rows => rows.map(r => r.dataset.phase + ':' + r.dataset.status)"
        )
        # kubeadm's phases plus Kubeboard's own, the pod network among them (Flannel, the form's default).
        assert len(statuses) == 19 and all(s.endswith(":succeeded") for s in statuses), statuses
        assert statuses[-2:] == ["pod-network:succeeded", "read-back:succeeded"], statuses
        seen = page.evaluate("Array.from(window.seen)")
        assert {"preflight:running", "wait-control-plane:running", "addon:succeeded"} <= set(seen), seen
        log = page.inner_text("#log")
        assert "[certs] Using existing ca certificate authority" in log
        assert "[WARNING ImagePull]" in log

        # Join the worker; a second tab on the cluster page follows its state without a reload.
        page.goto(f"{stack.http}/clusters/zeta/")
        assert page.inner_text("#cluster-status") == "Running"
        worker = Node.objects.get(cluster__name="zeta", name="node2")
        page.check(f"#join-workers-form input[name=nodes][value='{worker.pk}']")
        page.click("#join-workers")
        page.wait_for_url("**/operations/*/")
        # The same person in a second window (same session).
        second = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
        second.add_cookies(page.context.cookies())
        watcher = second.new_page()
        watcher.goto(f"{stack.http}/clusters/zeta/")
        watcher.evaluate("() => { window.notReloaded = true; }")
        row = watcher.locator("#node-list tr", has_text="node2")
        row.locator(".status-joined").wait_for(timeout=240_000)
        wait_succeeded(page, stack, 60_000)
        # The API server's Nodes are in the collapsed After init section: its tab opens it.
        watcher.click("#cluster-tabs a[href='#after-init']")
        watcher.locator("#api-nodes tr", has_text="node2").locator(".status-ready").wait_for(timeout=30_000)
        assert watcher.evaluate("window.notReloaded") is True, "the cluster page updated without a reload"
        assert "Running" in watcher.inner_text("#cluster-status")
        watcher.screenshot(path=str(tmp_path / "cluster.png"), full_page=True)
        assert "PRIVATE KEY" not in watcher.content()

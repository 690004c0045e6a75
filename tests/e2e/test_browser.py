"""A person in Chromium: log in, create a cluster, watch the identity phases turn done live."""

from __future__ import annotations

import os

import pytest

from kubeadm.versions import DEFAULT_KUBERNETES_VERSION
from tests.conftest import team_of

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page(tmp_path, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls in browser tests are
    # plain sync code. Only for the test that uses the browser: set for the whole session, the
    # variable reached subprocesses such as `manage.py check --deploy`, which refuses it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not os.path.exists(CHROMIUM):
        from tests.conftest import require_or_skip

        require_or_skip("Chromium is not installed (Debian package chromium; bin/test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


def test_create_cluster_and_watch_phases_live(stack_factory, operator, browser_page, tmp_path):
    stack = stack_factory()
    page = browser_page
    page.goto(f"{stack.http}/clusters/")
    assert "/login/" in page.url  # anonymous users are sent to the login page
    page.fill("#id_username", operator.username)
    page.fill("#id_password", "pw-" + operator.username)
    page.click("main button[type=submit]")
    page.click("text=New cluster")

    def fill(**values):
        for field, value in values.items():
            page.fill(f"#id_{field}", value)

    # A mistake first: overlapping subnets are refused with a message on the field.
    fill(name="web-e2e", control_plane_endpoint="10.0.0.10:6443", pod_subnet="10.96.0.0/16")
    page.select_option("#id_kubernetes_version", DEFAULT_KUBERNETES_VERSION)
    page.select_option("#id_team", label=team_of(operator).name)
    page.select_option("#id_encryption_algorithm", "RSA-4096")
    page.click("main button[type=submit]")
    assert "does not overlap serviceSubnet" in page.inner_text("#error-pod_subnet")
    assert page.input_value("#id_name") == "web-e2e", "the form keeps what the user typed"

    fill(pod_subnet="10.244.0.0/16")
    page.click("main button[type=submit]")
    page.wait_for_url("**/operations/*/")
    initial = page.get_attribute("#operation-status", "data-status")
    # Record every change the live feed makes to the pipeline, without reloading the page.
    page.evaluate(
        """() => { window.seen = [];
          new MutationObserver(() => document.querySelectorAll('.phase').forEach(
            p => window.seen.push(p.dataset.phase + ':' + p.dataset.status)))
          .observe(document.getElementById('pipeline'), {subtree: true, attributes: true}); }"""
    )
    page.wait_for_selector("#operation-status[data-status=succeeded]", timeout=120_000)
    statuses = page.eval_on_selector_all(".phase", "rows => rows.map(r => r.dataset.status)")
    assert statuses == ["succeeded"] * 4
    assert initial in {"queued", "running"}, "the page opened before the work finished, so it was watched live"
    assert page.evaluate("window.seen.length") > 0
    log = page.inner_text("#log")
    assert "CA-pin hash: sha256:" in log
    # The stream stays open (a resume could continue it), but the label no longer says "live".
    page.wait_for_selector("#connection-state[data-state=ended]")
    assert page.inner_text("#connection-state") == "ended: operation succeeded; the log is complete"
    page.screenshot(path=str(tmp_path / "operation.png"), full_page=True)

    page.click("text=web-e2e")
    # The identity and the audit are collapsed details on the cluster page: a person opens each
    # with its tab, and then sees what they hold.
    assert not page.is_visible("#ca-pin-hash"), "the identity is collapsed until asked for"
    page.click("#cluster-tabs a[href='#identity']")
    assert page.is_visible("#ca-pin-hash")
    pin = page.inner_text("#ca-pin-hash")
    assert pin.startswith("sha256:") and len(pin) == 71
    assert page.is_visible("#kubeadm-config")
    assert "kind: ClusterConfiguration" in page.inner_text("#kubeadm-config")
    assert page.locator("#authorities tbody tr:visible").count() == 4
    assert "PRIVATE KEY" not in page.content()
    page.click("#cluster-tabs a[href='#audit']")
    assert page.is_visible("#audit-table")
    assert "cluster.created" in page.inner_text("#audit-table")

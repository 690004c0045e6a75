"""A newcomer's first hour in Chromium (issue 10): a fresh database, the first login, the team the
first cluster needs, every bad input with its new message and the summary on top, the operation's
log searched, paused and downloaded, the CA certificate downloaded, and the three main pages at
phone width without sideways scrolling."""

from __future__ import annotations

import io
import re

import pytest
from cryptography import x509

from tests.e2e.test_browser import browser_page  # noqa: F401 (fixture)
from tests.e2e.test_operation_page import wait_js
from tests.support.web import log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]

PHONE = {"width": 390, "height": 844}
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def first_admin_password() -> str:
    """What bin/run prints on a fresh database (manage.py ensure_admin)."""
    from django.core.management import call_command

    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue().split("password: ")[1].split()[0]


def test_first_login_team_guide_and_every_bad_input_explained(stack_factory, browser_page, tmp_path):  # noqa: F811
    from django.contrib.auth.models import Group

    from kubeadm.versions import offered_versions

    assert not Group.objects.exists(), "a fresh database has no team"
    password = first_admin_password()
    stack = stack_factory()
    page = browser_page
    log_in(page, stack.http, "admin", password)

    # The cluster list says why nothing can be created yet, and fixes it in one click.
    guide = page.inner_text("#team-guide")
    assert "Every cluster belongs to a team" in guide and "there is no team yet" in guide
    assert page.locator("#new-cluster").count() == 0
    page.fill("#guide-team-name", "platform")
    page.click("#create-team")
    page.wait_for_url("**/clusters/new/")
    assert "Team platform created" in page.inner_text(".flash")
    assert page.locator("#team-guide").count() == 0
    assert page.eval_on_selector("#id_team", "s => s.options[s.selectedIndex].text") == "platform"

    # The version is a choice of what this release deploys, the newest preselected.
    options = page.eval_on_selector_all("#id_kubernetes_version option", "os => os.map(o => o.value)")
    assert options == offered_versions()
    assert page.input_value("#id_kubernetes_version") == offered_versions()[0]

    # Several mistakes at once: each under its field with the new message, and a summary on top.
    page.fill("#id_name", "Prod_EU")
    page.fill("#id_control_plane_endpoint", "http://x")
    page.fill("#id_pod_subnet", "10.96.0.0/16")
    # What a hand-edited request could still send (the select offers no such version).
    page.eval_on_selector("#id_kubernetes_version", "s => { s.add(new Option('1.34', '1.34')); s.value = '1.34'; }")
    page.click("#cluster-form button[type=submit]")
    version_error = page.inner_text("#error-kubernetes_version")
    assert "Kubernetes 1.34 is not supported by this Kubeboard" in version_error
    assert all(v in version_error for v in offered_versions()) and "1.34.2" not in version_error
    assert "expected a DNS label: at most 63 lower-case letters" in page.inner_text("#error-name")
    assert "253" not in page.inner_text("#error-name")
    assert "a scheme is not allowed; use host or host:port, e.g. 10.0.0.10:6443" in page.inner_text(
        "#error-control_plane_endpoint"
    )
    assert "must be a valid number" not in page.content()
    assert "does not overlap serviceSubnet" in page.inner_text("#error-pod_subnet")
    summary = page.locator("#error-summary")
    assert "4 things to fix" in summary.inner_text()
    assert summary.locator("li").count() == 4
    assert page.evaluate(
        "document.getElementById('error-summary').getBoundingClientRect().top"
        " < document.getElementById('error-name').getBoundingClientRect().top"
    )
    summary.locator("a[href='#id_name']").click()  # the summary links to the field
    assert page.evaluate("location.hash") == "#id_name"
    page.screenshot(path=str(tmp_path / "form-errors.png"), full_page=True)

    # A single mistake needs no summary; the message is still there.
    page.fill("#id_name", "prod-eu")
    page.fill("#id_control_plane_endpoint", "10.0.0.10:6443")
    page.click("#cluster-form button[type=submit]")
    assert page.locator("#error-summary").count() == 0
    assert "does not overlap serviceSubnet" in page.inner_text("#error-pod_subnet")

    page.fill("#id_pod_subnet", "10.244.0.0/16")
    page.click("#cluster-form button[type=submit]")
    page.wait_for_url(re.compile(r"/operations/\d+/"))
    page.wait_for_selector("#operation-status[data-status=succeeded]", timeout=120_000)
    assert page.inner_text("#operation-status") == "Succeeded"
    assert set(page.eval_on_selector_all(".phase .phase-status", "els => els.map(e => e.textContent)")) == {
        "Succeeded"
    }, "one status word on the whole page"


def test_log_tools_downloads_and_phone_width(stack_factory, make_user, browser_page, tmp_path):  # noqa: F811
    from clusters.models import Cluster
    from clusters.services import create_cluster
    from tests.conftest import team_of
    from tests.factories import CLUSTER_FORM

    operator = make_user("olivia", role="operator")
    fields = {k: v for k, v in CLUSTER_FORM.items()}
    cluster = Cluster(name="phone", team=team_of(operator), **fields)
    stack = stack_factory()
    operation = create_cluster(cluster, user=operator)
    page = browser_page
    log_in(page, stack.http, "olivia", "pw-olivia")

    page.goto(f"{stack.http}/operations/{operation.pk}/")
    page.wait_for_selector("#operation-status[data-status=succeeded]", timeout=120_000)
    page.wait_for_selector("#connection-state[data-state=ended]")
    assert page.inner_text("#connection-state").startswith("ended: operation succeeded")

    # Search narrows the log to matching lines and counts them; clearing shows everything again.
    total = page.locator("#log .line").count()
    page.fill("#log-search", "ca-pin hash")
    wait_js(page, "document.getElementById('log-search-count').textContent !== ''")
    visible = page.locator("#log .line:not([hidden])")
    assert visible.count() >= 1 and all("ca-pin hash" in t.lower() for t in visible.all_inner_texts())
    assert page.inner_text("#log-search-count").endswith(("line matches", "lines match"))
    page.fill("#log-search", "")
    assert page.locator("#log .line:not([hidden])").count() == total

    # The operation has ended: nothing more to follow, so no Pause (issue 18; Pause and Follow while
    # an operation runs: tests/e2e/test_cluster_page_browser.py).
    assert not page.is_visible("#log-follow") and not page.is_visible("#cancel-form")

    # The log downloads as text.
    with page.expect_download() as download:
        page.click("#log-download")
    saved = download.value
    assert saved.suggested_filename == f"operation-{operation.pk}.log.txt"
    text = open(saved.path(), encoding="utf-8").read()
    assert "CA-pin hash: sha256:" in text and "=== operation succeeded" in text

    # The CA certificate downloads as PEM; the pin is there to copy.
    page.goto(f"{stack.http}/clusters/phone/")
    page.click("#cluster-tabs a[href='#identity']")  # the identity is a collapsed detail until asked for
    with page.expect_download() as download:
        page.click("#download-ca")
    saved = download.value
    assert saved.suggested_filename == "phone-ca.crt"
    certificate = x509.load_pem_x509_certificate(open(saved.path(), "rb").read())
    assert certificate.subject.rfc4514_string() == "CN=kubernetes"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.http)
    page.click("#copy-ca-pin")
    # "Copied" appears once the asynchronous clipboard write has finished (then reverts after 1.5 s)
    wait_js(page, "document.getElementById('copy-ca-pin').textContent === 'Copied'", timeout=10)
    assert page.evaluate("navigator.clipboard.readText()") == page.inner_text("#ca-pin-hash").strip()
    page.click("#material-ca button[data-copy]")
    assert page.evaluate("navigator.clipboard.readText()").startswith("-----BEGIN CERTIFICATE-----")
    wait_js(page, "document.getElementById('copy-ca-pin').textContent === 'Copy pin'")
    assert "PRIVATE KEY" not in page.content()

    # Phone width: no page scrolls sideways; wide tables and the log scroll in their own box.
    page.set_viewport_size(PHONE)
    for path in ("/clusters/", "/clusters/phone/", f"/operations/{operation.pk}/"):
        page.goto(f"{stack.http}{path}")
        page.wait_for_load_state("load")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert page.evaluate(NO_SIDEWAYS_SCROLL), f"{path} scrolls sideways at 390 px: {widths}"
        page.screenshot(path=str(tmp_path / f"phone{path.replace('/', '-')}.png"), full_page=True)
    page.goto(f"{stack.http}/clusters/phone/")
    overflowing = page.evaluate(
        "[...document.querySelectorAll('table.list')].filter(t => t.scrollWidth > t.clientWidth)"
        ".map(t => getComputedStyle(t).overflowX)"
    )
    assert overflowing and set(overflowing) == {"auto"}, "wide tables scroll inside their own box"


def test_styled_error_pages_and_favicon(stack_factory, make_user, browser_page):  # noqa: F811
    make_user("vera", role="viewer")
    stack = stack_factory(workers=0)
    page = browser_page
    log_in(page, stack.http, "vera", "pw-vera")
    response = page.goto(f"{stack.http}/clusters/nowhere/")
    assert response.status == 404 and page.inner_text("#error-page h1") == "Not found"
    response = page.goto(f"{stack.http}/clusters/new/")
    assert response.status == 403 and page.inner_text("#error-page h1") == "Not allowed"
    icon = page.get_attribute("link[rel=icon]", "href")
    assert page.request.get(f"{stack.http}{icon}").headers["content-type"].startswith("image/svg+xml")

"""A person checks a machine whose host key no one has accepted yet, in Chromium, against a real
sshd and a real worker: the page says "host key not accepted yet", offers Accept and updates the
machine's badge without a reload, and after acceptance a clean check turns the badge to Reachable
the same way."""

from __future__ import annotations

import pytest

from nodes import services
from nodes.models import Node
from tests.conftest import require_or_skip, team_of
from tests.e2e.test_browser import browser_page  # noqa: F401 - the Chromium fixture
from tests.factories import make_cluster
from tests.support.services import ServiceUnavailable, start_sshd
from tests.support.web import log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield server
    server.stop()


def _check_and_wait(page) -> str:
    page.click("#check-machine")
    page.wait_for_selector("#check-status.status-queued, #check-status.status-running", timeout=10_000)
    page.wait_for_function(
        "() => !document.querySelector('#check[hx-trigger]') && !!document.querySelector('#check-status')",
        timeout=60_000,
    )
    return page.inner_text("#check-status")


def test_check_accept_and_check_again_without_a_reload(sshd, stack_factory, operator, browser_page):  # noqa: F811
    cluster = make_cluster("hk", team=team_of(operator))
    node = Node.objects.create(cluster=cluster, name="m1", address=sshd.host, ssh_port=sshd.port)
    sshd.authorize(services.ensure_cluster_key(cluster).public_key)
    stack = stack_factory()
    page = browser_page
    log_in(page, stack.http, operator.username, "pw-" + operator.username)
    page.goto(f"{stack.http}{node.get_absolute_url()}")
    page.evaluate("window.notReloaded = true")

    assert _check_and_wait(page) == "host key not accepted yet"
    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"
    assert page.inner_text("#node-status") == "Host key not accepted yet"
    assert page.is_visible("#accept-host-key")
    assert sshd.host_key_fingerprint() in page.inner_text("#offered-fingerprint")
    problems = page.inner_text("#check-problems")
    assert "`" not in problems and "node page" not in problems and "could not log in" not in problems
    assert "Unreachable" not in page.inner_text("main")

    page.click("#accept-host-key")  # a form: the answer redirects to this page
    page.wait_for_selector("#host-key-state.status-hostkey-pinned")
    page.evaluate("window.notReloaded = true")
    assert _check_and_wait(page).endswith("found"), page.inner_text("#check")
    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"
    assert page.inner_text("#node-status") == "Reachable"
    assert page.locator("#accept-host-key").count() == 0

"""A person keeps a cluster page open in Chromium: a node's, an operation's and a token's new state
each shows within 2 seconds, without reloading the page and without replacing the parts that did
not change (clusters.live, served by a real daphne)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from nodes.models import Node
from operations.models import Operation
from tests.conftest import session_cookie, team_of
from tests.e2e.test_browser import browser_page  # noqa: F401  (the Chromium fixture)
from tests.factories import make_cluster
from tokens.models import BootstrapToken

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]

LIMIT = 2.0  # seconds from the write to the page showing it


def shown_within(page, expression: str, since: float) -> float:
    """Seconds from ``since`` until ``expression`` is true on the page (the CSP forbids
    wait_for_function's eval: polled from here)."""
    while not page.evaluate(expression):
        if time.monotonic() - since > 10:
            raise TimeoutError(f"{expression} stayed false for 10 s")
        time.sleep(0.02)
    return time.monotonic() - since


def test_state_changes_show_within_two_seconds_without_a_reload(stack_factory, operator, browser_page):  # noqa: F811
    stack = stack_factory(workers=0)
    page = browser_page
    page.context.add_cookies([{"name": "sessionid", "value": session_cookie(operator), "url": stack.http}])
    cluster = make_cluster("watched", team=team_of(operator))
    node = Node.objects.create(cluster=cluster, name="node-a", address="10.0.0.21")
    operation = Operation.objects.create(
        cluster=cluster, kind="join", requested_by=operator, status=Operation.Status.RUNNING
    )
    BootstrapToken.objects.create(
        cluster=cluster, token_id="abcdef", secret="0123456789abcdef", expires_at=timezone.now() + timedelta(days=1)
    )
    # Queued an hour ago: "45 s ago" would change (and be re-rendered) every second.
    Operation.objects.filter(pk=operation.pk).update(created_at=timezone.now() - timedelta(hours=1))

    page.goto(f"{stack.http}/clusters/watched/")
    assert page.inner_text("#node-list") and "node-a" in page.inner_text("#node-list")
    # Markers a reload would lose, and one on each live part a swap would lose.
    page.evaluate(
        """() => { window.notReloaded = true;
          for (const id of ['node-list', 'operations', 'token-panel', 'inventory', 'init-state'])
            document.getElementById(id).dataset.kept = 'yes'; }"""
    )

    def kept(element_id: str) -> bool:
        return page.evaluate(f"document.getElementById('{element_id}').dataset.kept === 'yes'")

    # Each write goes right after a poll answered, the worst moment: it waits a whole interval.
    def after_a_poll() -> None:
        with page.expect_response(lambda r: "/clusters/watched/live/" in r.url, timeout=10_000):
            pass

    after_a_poll()
    began = time.monotonic()
    Node.objects.filter(pk=node.pk).update(status=Node.Status.JOINED)
    took = shown_within(page, "!!document.querySelector('#node-list .status-joined')", began)
    assert took <= LIMIT, f"the node's state showed after {took:.2f} s"
    assert not kept("node-list"), "the node list was replaced"
    assert kept("operations") and kept("token-panel") and kept("inventory") and kept("init-state"), (
        "parts that did not change stay as they are"
    )

    after_a_poll()
    began = time.monotonic()
    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.SUCCEEDED, finished_at=timezone.now())
    took = shown_within(page, "!!document.querySelector('#operations .status-succeeded')", began)
    assert took <= LIMIT, f"the operation's state showed after {took:.2f} s"
    assert kept("token-panel") and kept("inventory")

    after_a_poll()
    began = time.monotonic()
    BootstrapToken.objects.filter(cluster=cluster, token_id="abcdef").update(
        status=BootstrapToken.Status.REVOKED, revoked_at=timezone.now()
    )
    took = shown_within(page, "!!document.querySelector('#token-abcdef[data-state=revoked]')", began)
    assert took <= LIMIT, f"the token's state showed after {took:.2f} s"
    assert kept("inventory") and kept("init-state")

    assert page.evaluate("window.notReloaded") is True, "the page updated without a reload"

"""A person in Chromium on the operation page: groups by node, live states, hints, counts, the log
filter, resume from the page, cancel with confirmation, and a stream that stops when the session ends.

The operations use the plain-Python test kinds (tests/support/kinds.py) run by a real worker.
"""

from __future__ import annotations

import re
import time

import pytest

import tests.support.kinds  # noqa: F401  (registers the test kinds in this process too)
from operations.services import start_operation
from tests.conftest import session_cookie, team_of
from tests.e2e.test_browser import browser_page  # noqa: F401  (the Chromium fixture)
from tests.factories import make_cluster

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]


KINDS = {"KUBEBOARD_OPERATION_KIND_MODULES": "tests.support.kinds"}
HINT = "Fix the machine, then resume."


def wait_js(page, expression: str, timeout: float = 30.0):
    """Poll a JavaScript expression from here (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{expression} stayed false for {timeout} s")


def statuses(page) -> dict[str, str]:
    return page.eval_on_selector_all(
        ".phase", "rows => Object.fromEntries(rows.map(r => [r.dataset.key, r.dataset.status]))"
    )


def test_operation_page_live_controls(stack_factory, operator, browser_page, tmp_path):  # noqa: F811
    stack = stack_factory(**KINDS)
    page = browser_page
    page.context.add_cookies([{"name": "sessionid", "value": session_cookie(operator), "url": stack.http}])
    cluster = make_cluster(team=team_of(operator))
    plan = [["", "prepare"], ["n1", "work"], ["n1", "finish"], ["n2", "work"], ["n2", "finish"], ["", "finish"]]
    lines = [
        "W1127 07:00:00.123456   12345 checks.go:1080] the kubelet is not running",
        "\t[WARNING Swap]: swap is on",
        '<img src=x onerror="window.injected=1"> [preflight] <b>not bold</b>',
    ]
    operation = start_operation(
        cluster,
        "test-steps",
        user=operator,
        params={"plan": plan, "parallel": 2, "sleep": 0.5, "fail": {"n2:work": 1}, "lines": {"n1:work": lines}},
    )
    page.goto(f"{stack.http}/operations/{operation.pk}/")
    page.wait_for_selector("#operation-status[data-status=failed]", timeout=60_000)
    assert page.locator(".phase-group").count() == 2
    assert statuses(page) == {
        "prepare": "succeeded",
        "n1:work": "succeeded",
        "n1:finish": "succeeded",
        "n2:work": "failed",
        "n2:finish": "pending",
        "finish": "pending",
    }
    assert page.is_visible("#hints") and HINT in page.inner_text("#hints")
    assert page.inner_text('.phase[data-key="n1:work"] .count-warning') == "2 warnings"
    assert page.inner_text("#progress") == "3 of 6 phases done"
    assert page.is_visible("#resume-form") and not page.is_visible("#cancel-form")
    # Output is text, never markup.
    assert page.evaluate("window.injected") is None
    assert '<img src=x onerror="window.injected=1">' in page.inner_text("#log")
    assert re.fullmatch(r"\d+\.\d\d s", page.inner_text('.phase[data-key="n1:work"] .phase-duration'))

    # Click a phase: the log shows only its lines; click again: everything.
    page.click('.phase[data-key="n1:work"] .phase-name')
    visible = page.eval_on_selector_all("#log .line", "ls => ls.filter(l => !l.hidden).map(l => l.dataset.key)")
    assert visible and set(visible) == {"n1:work"}
    assert page.inner_text("#log-filter-name") == "n1:work"
    page.click('.phase[data-key="n1:work"] .phase-name')
    assert page.eval_on_selector_all("#log .line", "ls => ls.filter(l => l.hidden).length") == 0
    page.screenshot(path=str(tmp_path / "operation-failed.png"), full_page=True)

    # Resume from the page: only n2 runs again; the attempt history shows both tries.
    page.click("#resume-form button[type=submit]")
    page.wait_for_selector("#operation-status[data-status=succeeded]", timeout=60_000)
    assert set(statuses(page).values()) == {"succeeded"}
    assert page.inner_text("#progress") == "6 of 6 phases done"
    rows = page.eval_on_selector_all(
        '.phase[data-key="n2:work"] .attempt-table tbody tr', "rs => rs.map(r => r.className)"
    )
    assert rows == ["attempt-failed", "attempt-succeeded"]
    assert page.locator('.phase[data-key="n1:work"] .attempt-table tbody tr').count() == 1
    assert not page.is_visible("#hints")

    # Cancel a phase that blocks, after confirming; the running phase shows a live elapsed time.
    blocking = start_operation(cluster, "test-steps", user=operator, params={"block": {"work": 1}})
    page.goto(f"{stack.http}/operations/{blocking.pk}/")
    page.wait_for_selector('.phase[data-key="work"][data-status=running]', timeout=60_000)
    elapsed = '.phase[data-key="work"] .phase-duration'
    first = wait_js(
        page,
        f"""(() => {{ const t = document.querySelector('{elapsed}').textContent;
                                   return /^\\d+\\.\\d\\d s …$/.test(t) && t; }})()""",
    )
    wait_js(page, f"document.querySelector('{elapsed}').textContent !== {first!r}", timeout=5)
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("#cancel-form button[type=submit]")
    page.wait_for_selector("#operation-status[data-status=cancelled]", timeout=30_000)
    assert dialogs and "Cancel this operation?" in dialogs[0]
    assert statuses(page) == {"prepare": "succeeded", "work": "cancelled", "finish": "pending"}
    assert page.is_visible("#resume-form")

    # The session ends elsewhere (logout): the stream is closed with 4401 and the page stops retrying.
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()
    wait_js(page, "document.getElementById('connection-state').dataset.closeCode === '4401'", timeout=60)
    assert page.inner_text("#connection-state").startswith("stopped: ")

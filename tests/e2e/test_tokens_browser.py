"""A person in Chromium rotates a bootstrap token of a real cluster and sees the result."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest

from tests.conftest import team_of
from tests.e2e.test_browser import browser_page  # noqa: F401 - the Chromium fixture
from tests.support.kubeclusters import start_token_testbed
from tests.support.web import log_in
from tokens import services
from tokens.models import BootstrapToken

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(600)]


NAME = "kbtbt2"
SUBNET = "10.213.22.0/24"


@pytest.fixture(scope="module")
def testbed():
    with start_token_testbed(NAME, SUBNET, size=1) as bed:
        yield bed


def test_rotate_a_token_in_the_browser(testbed, stack_factory, make_user, browser_page, tmp_path):  # noqa: F811
    operator = make_user("otto", role="operator")
    cluster = testbed.created_cluster("browser", team=team_of(operator))
    old, _ = services.create_token(cluster, user=operator, ttl=timedelta(hours=3), description="to rotate")
    stack = stack_factory()
    page = browser_page
    log_in(page, stack.http, operator.username, "pw-" + operator.username)
    page.goto(f"{stack.http}/clusters/{cluster.name}/tokens/")

    row = page.locator(f"#token-{old.token_id}")
    assert row.get_attribute("data-state") == "valid"
    countdown = row.locator(".countdown")
    first = countdown.inner_text()
    assert re.fullmatch(r"in 2h 59m \d\ds", first), first
    page.wait_for_function(
        "([el, before]) => el.textContent !== before", arg=[countdown.element_handle(), first], timeout=5000
    )
    assert old.plain_secret() not in page.content(), "the secret is not in the page"
    assert page.locator("#token-timeline svg .bar").count() >= 1

    row.locator("button.rotate").click()
    page.wait_for_selector("#new-token-value")
    new_token = page.inner_text("#new-token-value").strip()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", new_token) and not new_token.startswith(old.token_id)
    assert page.inner_text("#worker-join-command").startswith(f"kubeadm join {testbed.endpoint} --token {new_token}")
    shown = page.inner_text("#new-token-countdown")
    assert re.fullmatch(r"in 2h 59m \d\ds", shown), shown
    page.screenshot(path=str(tmp_path / "rotated.png"), full_page=True)
    # Post/Redirect/Get: the result is a page of its own; a reload shows the token no more and rotates nothing.
    assert page.url.endswith(f"/tokens/{new_token[:6]}/created/"), page.url
    tokens_before = sorted(BootstrapToken.objects.filter(cluster=cluster).values_list("token_id", flat=True))
    page.reload()
    page.wait_for_selector("#already-shown")
    assert new_token not in page.content()
    assert sorted(BootstrapToken.objects.filter(cluster=cluster).values_list("token_id", flat=True)) == tokens_before

    # The successor is a real Secret the API server accepts.
    secret = json.loads(
        testbed.cp.kubectl(
            "-n", "kube-system", "get", "secret", f"bootstrap-token-{new_token[:6]}", "-o", "json"
        ).stdout
    )
    assert secret["type"] == "bootstrap.kubernetes.io/token"

    page.click("#back-to-tokens")
    page.wait_for_selector(f"#token-{new_token[:6]}")
    assert page.get_attribute(f"#token-{new_token[:6]}", "data-state") == "valid"
    assert f"successor {new_token[:6]}" in page.inner_text(f"#token-{old.token_id}")
    assert page.locator(f"#token-{old.token_id} button.rotate").count() == 0, "rotated once, not twice"
    activity = page.inner_text("#token-audit")
    assert "token.rotated" in activity and operator.username in activity and old.token_id in activity
    assert new_token.split(".")[1] not in activity
    deadline = time.monotonic() + 5
    while "in " not in page.inner_text(f"#token-{new_token[:6]} .countdown") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert page.inner_text(f"#token-{new_token[:6]} .countdown").startswith("in 2h 59m")
    page.screenshot(path=str(tmp_path / "tokens.png"), full_page=True)


def test_an_admin_reveals_a_token_and_its_join_command_on_request(testbed, stack_factory, make_user, browser_page):  # noqa: F811
    admin = make_user("ada", role="admin")
    cluster = testbed.created_cluster("reveal", team=team_of(admin))
    token, full = services.create_token(cluster, user=admin, ttl=timedelta(hours=3), description="to reveal")
    stack = stack_factory()
    page = browser_page
    log_in(page, stack.http, admin.username, "pw-" + admin.username)
    page.goto(f"{stack.http}/clusters/{cluster.name}/tokens/")
    assert full not in page.content()
    row = page.locator(f"#token-{token.token_id}")
    # Reveals sit behind one "Reveal…" menu, so the Actions column is one row, not a stack of buttons.
    row.locator("details.token-menu summary").click()
    row.locator("button.reveal").click()
    page.wait_for_selector(f"#reveal-{token.token_id} #revealed-value")
    assert page.inner_text(f"#reveal-{token.token_id} #revealed-value").strip() == full
    assert page.url.endswith(f"/clusters/{cluster.name}/tokens/"), "shown in place (htmx), not on a new page"
    row.locator("button", has_text="Join command").first.click()
    page.wait_for_selector(f"#reveal-{token.token_id} #join-command")
    command = page.inner_text(f"#reveal-{token.token_id} #join-command")
    # The command gets the table's whole width (its own row), not the Actions cell's.
    box = page.locator(f"#reveal-{token.token_id} #join-command").bounding_box()
    table = page.locator("#token-table").bounding_box()
    actions = row.locator("td.token-actions").bounding_box()
    assert box["width"] > actions["width"] * 2 and box["width"] > table["width"] * 0.7, (box, actions, table)
    assert command.startswith(f"kubeadm join {testbed.endpoint} --token {full}")
    assert f"--discovery-token-ca-cert-hash {cluster.ca_pin_hash}" in command
    page.reload()
    assert full not in page.content(), "gone again after a reload"
    activity = page.inner_text("#token-audit")
    assert "token.revealed" in activity and "token.join_command_revealed" in activity

"""A team admin in Chromium follows one machine's story in the history and downloads it.

The machine's records are written by the real node services (add, host key offered and
accepted) and, for the token and join steps whose services need a live cluster, by the same
``record`` calls those services make (tokens.services / the join engine)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import team_of
from tests.e2e.test_browser import browser_page  # noqa: F401 (fixture)
from tests.factories import make_cluster
from tests.support.web import log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]

SECRET = "0123456789abcdef"


def seed(admin, operator):
    from audit.context import audit_context
    from audit.services import record
    from nodes import services
    from nodes.models import Node
    from tokens.models import BootstrapToken

    cluster = make_cluster("story", team=team_of(admin))
    with audit_context(actor=operator, source="web"):
        node = services.add_node(Node(cluster=cluster, name="worker-1", address="10.0.0.21"), user=operator)
        other = services.add_node(Node(cluster=cluster, name="worker-2", address="10.0.0.22"), user=operator)
    services.note_offered_host_key(node.pk, "ssh-ed25519 AAAAC3Nza-story", "SHA256:storykey", changed=False)
    services.accept_host_key(node, user=admin, fingerprint="SHA256:storykey")
    token = BootstrapToken.objects.create(cluster=cluster, token_id="abc123", secret=SECRET, node=node)
    with audit_context(actor=operator, source="web"):
        record("token.created", obj=token, details={"token_id": "abc123", "node": "worker-1", "purpose": "join"})
    record("node.joined", actor=operator, obj=node, details={"token_id": "abc123"})
    record("node.joined", actor=operator, obj=other, details={"token_id": "zzz999"})
    return node, other


def test_filter_one_machines_history_and_download_it(stack_factory, make_user, browser_page, tmp_path):  # noqa: F811
    admin = make_user("ada", role="admin")
    operator = make_user("oscar", role="operator")
    node, other = seed(admin, operator)
    stack = stack_factory(workers=0)
    page = browser_page
    pages_seen: list[str] = []

    log_in(page, stack.http, "ada", "pw-ada")
    page.click("nav >> text=History")
    pages_seen.append(page.content())

    # A malformed filter is explained on the page, nothing breaks.
    page.fill("#id_since", "last tuesday")
    page.click("#history-filters button[type=submit]")
    assert "is not a date or time" in page.inner_text("#error-since")
    pages_seen.append(page.content())

    page.fill("#id_since", "")
    page.fill("#id_object", f"node:{node.pk}")
    page.click("#history-filters button[type=submit]")
    actions = page.eval_on_selector_all("#audit-table tbody tr td:nth-child(4)", "cells => cells.map(c => c.innerText)")
    assert actions == ["node.joined", "node.host_key_accepted", "node.host_key_offered", "node.added"]
    pages_seen.append(page.content())

    # The machine's whole story: its token and who made it, who approved its host key.
    page.goto(f"{stack.http}/audit/nodes/{node.pk}/")
    story = page.inner_text("#node-story")
    assert "by ada" in story and "abc123" in story and "created by oscar" in story
    rows = page.eval_on_selector_all("#audit-table tbody tr td:nth-child(4)", "cells => cells.map(c => c.innerText)")
    assert "token.created" in rows and rows.count("node.joined") == 1, rows
    pages_seen.append(page.content())

    with page.expect_download() as download_info:
        page.click("#export-jsonl")
    download = download_info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    exported = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["action"] for row in exported] == rows
    assert all(row["object_id"] != str(other.pk) for row in exported), "only this machine's story"
    assert {row["correlation_id"] for row in exported if row["action"] in ("node.added", "token.created")}

    with page.expect_download() as download_info:
        page.click("#export-csv")
    csv_text = download_info.value.path().read_text()
    assert csv_text.splitlines()[0].startswith("seq,created,actor,action")
    assert len(csv_text.splitlines()) == len(rows) + 1

    for html in pages_seen + [path.read_text(), csv_text]:
        assert SECRET not in html and "PRIVATE KEY" not in html

"""The bootstrap history: team-scoped, filtered, keyset-paged, exported as a stream, a node's story."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.http import StreamingHttpResponse

from audit.context import audit_context
from audit.models import AuditEvent
from audit.services import record
from nodes.models import Node
from tests.conftest import team_of
from tests.factories import make_cluster
from tokens.models import BootstrapToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def teams(make_user):
    viewer = make_user("vera", role="viewer")
    outsider = make_user("otto", team="elsewhere", role="admin")
    mine = make_cluster("mine", team=team_of(viewer))
    theirs = make_cluster("theirs", team=team_of(outsider))
    record("cluster.created", actor=viewer, obj=mine, details={"endpoint": "10.0.0.10:6443"})
    record("cluster.created", actor=outsider, obj=theirs, details={"endpoint": "10.9.9.9:6443"})
    record("auth.login", actor=viewer)
    record("auth.login", actor=outsider)
    return {"viewer": viewer, "outsider": outsider, "mine": mine, "theirs": theirs}


def rows(response) -> list[str]:
    return [f"{e.action}:{e.cluster_name or '-'}:{e.actor_name}" for e in response.context["page"].records]


def test_a_member_sees_their_teams_records_and_their_own(client, teams):
    client.force_login(teams["viewer"])
    seen = rows(client.get("/audit/"))  # (logging in is itself a record)
    assert seen == ["auth.login:-:vera", "auth.login:-:vera", "cluster.created:mine:vera"]


def test_a_superuser_sees_everything(client, teams, make_user):
    client.force_login(make_user("root", team=None, superuser=True))
    assert len(rows(client.get("/audit/"))) == 4 + 1  # and their own login


def test_a_removed_member_loses_the_history_and_its_export_at_once(client, teams):
    client.force_login(teams["viewer"])
    assert "cluster.created:mine:vera" in rows(client.get("/audit/?cluster=mine"))
    teams["viewer"].team_memberships.all().delete()
    assert rows(client.get("/audit/?cluster=mine")) == []
    body = b"".join(client.get("/audit/export.jsonl?cluster=mine").streaming_content)
    assert body == b""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cluster=mine", ["cluster.created:mine:vera"]),
        ("actor=otto", ["auth.login:-:otto", "cluster.created:theirs:otto"]),
        ("action=auth.login", ["auth.login:-:root", "auth.login:-:otto", "auth.login:-:vera"]),
        ("action=cluster.", ["cluster.created:theirs:otto", "cluster.created:mine:vera"]),
        ("object=cluster", ["cluster.created:theirs:otto", "cluster.created:mine:vera"]),
        ("q=10.9.9", ["cluster.created:theirs:otto"]),
        ("q=100%25", []),
        ("outcome=failure", []),
        ("since=2000-01-01&until=2999-12-31&actor=otto", ["auth.login:-:otto", "cluster.created:theirs:otto"]),
        ("until=2000-01-01", []),
    ],
)
def test_filters(client, teams, make_user, query, expected):
    client.force_login(make_user("root", team=None, superuser=True))
    response = client.get("/audit/?" + query)
    assert response.status_code == 200
    assert rows(response) == expected


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("since=yesterday", "since", "is not a date or time"),
        ("until=2026-13-45", "until", "is not a date or time"),
        ("since=2026-02-01&until=2026-01-01", "until", "before its start"),
        ("object=Node 12!", "object", "is not an object"),
        ("before=abc", "before", "whole number"),
        ("outcome=maybe", "outcome", "valid choice"),
        ("before=99999999999999999999999", "before", "less than or equal"),
    ],
)
def test_malformed_filters_get_a_clear_message_not_a_500(client, teams, query, field, message):
    client.force_login(teams["viewer"])
    for url in ("/audit/?", "/audit/export.csv?"):
        response = client.get(url + query)
        assert response.status_code == 400
        assert message in " ".join(response.context["form"].errors[field])
        assert "Some filters could not be used" in response.content.decode()


def test_keyset_pages_walk_the_whole_history_without_overlap(client, make_user):
    root = make_user("root", team=None, superuser=True)
    for n in range(120):
        record("test.page", details={"n": n})
    client.force_login(root)
    seen, url, pages = [], "/audit/?action=test.page", 0
    while url:
        page = client.get(url).context["page"]
        seen += [e.details["n"] for e in page.records]
        url = f"/audit/?action=test.page&before={page.older}" if page.older else None
        pages += 1
    assert seen == list(range(119, -1, -1)) and pages == 3
    newer = client.get(f"/audit/?action=test.page&after={AuditEvent.objects.get(details__n=9).id}").context["page"]
    assert [e.details["n"] for e in newer.records] == list(range(59, 9, -1)) and newer.newer is not None


def test_exports_stream_csv_and_json_lines(client, teams, make_user):
    client.force_login(make_user("root", team=None, superuser=True))
    response = client.get("/audit/export.csv?action=cluster.created")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"].startswith('attachment; filename="kubeboard-audit-')
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["cluster"] for row in table] == ["theirs", "mine"]
    assert json.loads(table[0]["details"]) == {"endpoint": "10.9.9.9:6443"}
    lines = b"".join(client.get("/audit/export.jsonl?cluster=mine").streaming_content).decode().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["cluster.created"]
    assert client.get("/audit/export.xml").status_code == 404


def test_a_nodes_story_names_its_token_its_creator_and_who_approved_its_host_key(client, make_user):
    admin = make_user("ada", role="admin")
    operator = make_user("oscar", role="operator")
    cluster = make_cluster("story", team=team_of(admin))
    node = Node.objects.create(cluster=cluster, name="worker-1", address="10.0.0.21")
    other = Node.objects.create(cluster=cluster, name="worker-2", address="10.0.0.22")
    token = BootstrapToken.objects.create(cluster=cluster, token_id="abc123", secret="0123456789abcdef", node=node)
    with audit_context(actor=operator):
        record("node.added", obj=node, details={"address": "10.0.0.21"})
        record("token.created", obj=token, details={"token_id": "abc123", "node": "worker-1", "purpose": "join"})
    record("node.host_key_accepted", actor=admin, obj=node, details={"fingerprint": "SHA256:xyz"})
    record("node.added", actor=operator, obj=other, details={"address": "10.0.0.22"})
    record("node.joined", actor=operator, obj=node, details={"token_id": "abc123"})
    client.force_login(admin)
    response = client.get(f"/audit/nodes/{node.pk}/")
    text = response.content.decode()
    assert response.status_code == 200
    assert [e.action for e in response.context["page"].records] == [
        "node.joined",
        "node.host_key_accepted",
        "token.created",
        "node.added",
    ]
    story = response.context["story"]
    assert story.host_key.actor_name == "ada"
    assert [(token_id, created.actor_name) for token_id, created in story.tokens] == [("abc123", "oscar")]
    assert "SHA256:xyz" in text and "0123456789abcdef" not in text
    outsider = make_user("eve", team="elsewhere")
    client.force_login(outsider)
    assert client.get(f"/audit/nodes/{node.pk}/").status_code == 404


def test_the_cluster_panel_shows_key_values_and_links_to_the_history(client, teams):
    client.force_login(teams["viewer"])
    text = client.get("/clusters/mine/").content.decode()
    assert "<dt>endpoint</dt><dd>10.0.0.10:6443</dd>" in text
    assert "/audit/?cluster=mine" in text
    assert "{'endpoint'" not in text


def test_audit_export_command_acts_as_a_user_and_refuses_bad_filters(teams, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = tmp_path / "mine.jsonl"
    call_command("audit_export", "--as", "vera", "--output", str(out))
    assert sorted(json.loads(line)["cluster"] for line in out.read_text().splitlines()) == ["", "mine"]
    teams["viewer"].team_memberships.all().delete()
    call_command("audit_export", "--as", "vera", "--cluster", "mine", "--output", str(out))
    assert out.read_text() == "", "removed from the team: the cluster's records are gone at once"
    with pytest.raises(CommandError, match="--since: “soon” is not a date"):
        call_command("audit_export", "--since", "soon")
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("audit_export", "--as", "ghost")


def test_pages_merge_a_members_cluster_records_and_own_records_in_order(client, teams):
    viewer = teams["viewer"]
    for n in range(60):
        record("test.cluster", actor=teams["outsider"], obj=teams["mine"], details={"n": 2 * n})
        record("test.own", actor=viewer, details={"n": 2 * n + 1})
        record("test.hidden", actor=teams["outsider"], obj=teams["theirs"], details={"n": -1})
    client.force_login(viewer)
    seen, url = [], "/audit/?action=test."
    while url:
        page = client.get(url).context["page"]
        seen += [e.details["n"] for e in page.records]
        url = f"/audit/?action=test.&before={page.older}" if page.older else None
    assert seen == list(range(119, -1, -1)), "every visible record once, newest first, none of the other team's"

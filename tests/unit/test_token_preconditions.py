"""The Tokens page offers nothing before it can work (issue 18 items 2 and 7, the tokens' part).

On a cluster that was never initialized, the page's Sync with the cluster and each token row's
Rotate and Revoke are shown disabled with the reason; a direct POST is refused with the same
words before any connection, and audited as Create token's refusal is (the action's own record,
failed, with the reason); the scheduled sync skips that cluster quietly. "No connection" is
proved as in tests/unit/test_action_preconditions.py: the outgoing-connection gate every SSH and
API connection passes is pointed at a recorder, which must see nothing. An initialized cluster
is the control: there the buttons are offered and the sync does try to connect.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from clusters.models import Cluster
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities

# The recorder and the never-initialized cluster of the preconditions tests, shared on purpose:
# one definition of "no connection was attempted".
from tests.unit.test_action_preconditions import (  # noqa: F401 (fixtures)
    REFUSAL,
    SHOWN,
    _said,
    _text,
    ca,
    client,
    fresh,
    no_connections,
)
from tokens import tasks
from tokens.models import BootstrapToken, TokenSync

pytestmark = pytest.mark.django_db


def _live_token(cluster: Cluster, token_id: str = "abcdef") -> BootstrapToken:
    """A valid token Kubeboard holds for the cluster (e.g. from before a reset)."""
    now = timezone.now()
    return BootstrapToken.objects.create(
        cluster=cluster,
        token_id=token_id,
        secret="0123456789abcdef",
        expires_at=now + timedelta(hours=20),
        created_at=now,
    )


@pytest.fixture
def running(operator, ca):  # noqa: F811 (the shared CA fixture)
    cluster = make_cluster(
        "up", team=team_of(operator), control_plane_endpoint="10.213.0.31:6443", status=Cluster.Status.RUNNING
    )
    store_authorities(cluster, {"ca": ca})
    return cluster


def test_sync_rotate_and_revoke_are_shown_disabled_with_the_reason(fresh, client, no_connections):  # noqa: F811
    _live_token(fresh)
    page = _text(client.get(reverse("tokens:list", args=[fresh.name])))
    for action in ("sync_tokens", "rotate_token", "revoke_token"):
        assert f'data-unavailable="{action}"' in page, action
    assert 'id="sync-now"' not in page
    assert reverse("tokens:sync", args=[fresh.name]) not in page
    assert reverse("tokens:rotate", args=[fresh.name, "abcdef"]) not in page
    assert reverse("tokens:delete", args=[fresh.name, "abcdef"]) not in page
    # Said in words beside Sync and once in the row (after Revoke); Rotate carries it in its title.
    assert page.count(SHOWN) == 3, "Sync, the row's Revoke, and Create token"
    assert f'title="{REFUSAL}">Rotate</button>' in page
    assert no_connections == []


def test_an_initialized_cluster_offers_them(running, client, no_connections):  # noqa: F811
    _live_token(running)
    page = _text(client.get(reverse("tokens:list", args=[running.name])))
    assert 'id="sync-now"' in page and 'class="rotate"' in page and 'class="danger revoke"' in page
    assert "data-unavailable" not in page


def test_direct_requests_are_refused_with_the_same_words_and_no_connection(fresh, client, no_connections):  # noqa: F811
    token = _live_token(fresh)
    posts = {
        "tokens:sync": ([fresh.name], "Nothing was synced: "),
        "tokens:rotate": ([fresh.name, token.token_id], "Token abcdef was not rotated: "),
        "tokens:delete": ([fresh.name, token.token_id], "Token abcdef was not revoked: "),
    }
    for route, (args, prefix) in posts.items():
        response = client.post(reverse(route, args=args), follow=True)
        assert response.redirect_chain[-1][0] == reverse("tokens:list", args=[fresh.name]), route
        assert _said(response) == [prefix + REFUSAL], route
    assert no_connections == []
    token.refresh_from_db()
    assert token.status == BootstrapToken.Status.ACTIVE and token.successor is None
    assert list(BootstrapToken.objects.filter(cluster=fresh).values_list("token_id", flat=True)) == ["abcdef"]

    # Audited as Create token's refusal for the same reason is: its own action, failed, the reason.
    client.post(reverse("tokens:create", args=[fresh.name]), {"ttl": "1h", "usages": ["signing", "authentication"]})
    records = {
        event.action: event
        for event in AuditEvent.objects.filter(
            action__in=("token.created", "token.synced", "token.rotated", "token.revoked")
        )
    }
    assert sorted(records) == ["token.created", "token.revoked", "token.rotated", "token.synced"]
    created = records["token.created"]
    assert (created.outcome, created.details["error"]) == ("failure", REFUSAL)
    for action in ("token.synced", "token.rotated", "token.revoked"):
        event = records[action]
        assert (event.outcome, event.details["error"], event.actor_name) == ("failure", REFUSAL, "olivia"), action
    assert records["token.rotated"].object_id == records["token.revoked"].object_id == str(token.pk)
    assert records["token.synced"].details["result"] == "skipped"


def test_the_scheduled_sync_skips_an_uninitialized_cluster_quietly(fresh, running, no_connections, caplog):  # noqa: F811
    due = timezone.now() - timedelta(minutes=1)
    TokenSync.objects.create(cluster=fresh, next_sync_at=due)
    TokenSync.objects.create(cluster=running, next_sync_at=due)
    before = AuditEvent.objects.count()
    with caplog.at_level(logging.DEBUG):
        summary = tasks.sync_due()
    assert "fresh: skipped" in summary
    assert [record for record in caplog.records if "fresh" in record.getMessage()] == []
    skipped = TokenSync.objects.get(cluster=fresh)
    assert skipped.result == TokenSync.Result.NEVER and skipped.last_attempt_at is None and skipped.message == ""
    # Looked at again at the normal interval, not at every run.
    assert skipped.next_sync_at >= timezone.now() + timedelta(minutes=4)
    assert AuditEvent.objects.count() == before
    # The initialized cluster is the control: it was asked (refused by the recorder), fresh never.
    assert "up: unreachable" in summary
    assert set(no_connections) == {"10.213.0.31"}
    assert tasks.sync_due() == "nothing due"

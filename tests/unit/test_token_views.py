"""Token pages without a cluster behind them: roles, bad input refused with specific messages
before anything reaches a cluster, secrets shown only on an admin's request (and audited)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from tests.conftest import team_of
from tests.factories import make_cluster
from tokens.forms import TokenForm, TokenPolicyForm
from tokens.models import BootstrapToken, TokenPolicy
from tokens.policies import policy_for

SECRET = "0123456789abcdef"


@pytest.fixture
def owner(make_user):
    return make_user("owner", role="admin")


@pytest.fixture
def cluster(owner):
    return make_cluster("c1", team=team_of(owner), ca_pin_hash="sha256:" + "ab" * 32)


@pytest.fixture
def token(cluster):
    return BootstrapToken.objects.create(
        cluster=cluster,
        token_id="abcdef",
        secret=SECRET,
        description="for node3",
        expires_at=timezone.now() + timedelta(hours=3),
    )


def member(make_user, cluster, name: str, role: str):
    user = make_user(name, team=None)
    from core.models import TeamMembership

    TeamMembership.objects.create(team=cluster.team, user=user, role=role)
    return user


def form(cluster, **data):
    values = {"usages": ["signing", "authentication"], "groups": "system:bootstrappers:kubeadm:default-node-token"}
    values.update(data)
    return TokenForm(values, cluster=cluster, policy=policy_for(cluster))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"token": "ABCDEF.0123456789abcdef"}, "token", "expected a bootstrap token of the form"),
        ({"token": "abcdef.short"}, "token", "a secret of 5 characters that is not"),
        ({"ttl": "0"}, "ttl", "a TTL of zero"),
        ({"ttl": "8d"}, "ttl", "longer than this cluster's maximum TTL of 7 days"),
        ({"ttl": "soon"}, "ttl", "is not a duration; write it like 24h"),
        ({"usages": ["signing", "bogus"]}, "usages", "unknown usage bogus"),
        ({"groups": "system:nodes"}, "groups", "expected a group matching system:bootstrappers:"),
        ({"groups": "system:bootstrappers:Bad"}, "groups", "expected a group matching"),
        (
            {"usages": ["signing"], "groups": "system:bootstrappers:x"},
            "groups",
            'unless usages include "authentication"',
        ),
        ({"ttl": "1h", "expires_at": "2099-01-01T00:00"}, "ttl", "either a TTL or an expiry date"),
        ({"expires_at": "2001-01-01T00:00"}, "expires_at", "in the past"),
    ],
)
def test_bad_token_input_gets_a_specific_message(cluster, data, field, message):
    bound = form(cluster, **data)
    assert not bound.is_valid()
    assert any(message in error for error in bound.errors.get(field, [])), bound.errors
    assert SECRET not in str(bound.errors)


@pytest.mark.django_db
def test_duplicate_id_and_valid_input(cluster, token):
    duplicate = form(cluster, token=f"abcdef.{'z' * 16}")
    assert not duplicate.is_valid()
    assert "token id abcdef already exists in this cluster" in duplicate.errors["token"][0]
    assert "z" * 16 not in str(duplicate.errors)
    assert form(cluster, ttl="2h30m", description="ok").is_valid()


@pytest.mark.django_db
def test_policy_form_keeps_the_limits_consistent(cluster):
    policy = policy_for(cluster)
    data = {
        "default_ttl": "48h",
        "max_ttl": "24h",
        "max_lifetime": "30d",
        "rotate_before": "2h",
        "rotation_grace": "15m",
        "revoke_after_join": "on",
    }
    bound = TokenPolicyForm(data, instance=policy)
    assert not bound.is_valid() and "longer than the maximum TTL (24 hours)" in bound.errors["default_ttl"][0]
    bound = TokenPolicyForm(data | {"default_ttl": "1h"}, instance=policy)
    assert not bound.is_valid() and "shorter than the default TTL" in bound.errors["rotate_before"][0]
    assert TokenPolicyForm(data | {"default_ttl": "12h"}, instance=policy).is_valid()


@pytest.mark.django_db
def test_policy_change_is_audited_and_reschedules_tokens(client, owner, cluster, token):
    client.force_login(owner)
    data = {
        "default_ttl": "12h",
        "max_ttl": "24h",
        "max_lifetime": "30d",
        "rotate_before": "1h",
        "rotation_grace": "15m",
        "revoke_after_join": "on",
        "keep_valid_token": "on",
    }
    response = client.post(f"/clusters/{cluster.name}/tokens/policy/", data)
    assert response.status_code == 302
    policy = TokenPolicy.objects.get(cluster=cluster)
    assert policy.keep_valid_token and policy.next_check_at is not None
    event = AuditEvent.objects.get(action="token_policy.changed")
    assert event.details["rotate_before"] == {"from": "2h", "to": "1h"}
    token.refresh_from_db()
    assert token.next_action_at == token.expires_at, "rescheduled by the new policy"


@pytest.mark.django_db
def test_roles(client, make_user, cluster, token):
    url = f"/clusters/{cluster.name}/tokens/"
    viewer = member(make_user, cluster, "vera", "viewer")
    operator = member(make_user, cluster, "otto", "operator")
    outsider = make_user("olaf", team="other", role="admin")

    client.force_login(outsider)
    assert client.get(url).status_code == 404

    client.force_login(viewer)
    page = client.get(url)
    assert page.status_code == 200 and b"abcdef" in page.content
    assert b"Rotate</button>" not in page.content and b"Reveal</button>" not in page.content
    assert client.post(url + "new/", {"ttl": "1h"}).status_code == 403
    assert client.post(url + "abcdef/delete/").status_code == 403

    client.force_login(operator)
    page = client.get(url)
    assert b"Rotate</button>" in page.content and b"Reveal</button>" not in page.content
    assert client.post(url + "abcdef/reveal/").status_code == 403
    assert client.post(url + "abcdef/join-command/", {"role": "worker"}).status_code == 403
    assert not AuditEvent.objects.filter(action__startswith="token.").exists()


@pytest.mark.django_db
def test_admin_reveals_on_request_only_and_it_is_audited(client, owner, cluster, token):
    client.force_login(owner)
    url = f"/clusters/{cluster.name}/tokens/"
    page = client.get(url)
    assert SECRET.encode() not in page.content, "never in the page until asked"
    assert b"abcdef.****************" in page.content
    revealed = client.post(url + "abcdef/reveal/")
    assert revealed.status_code == 200 and f"abcdef.{SECRET}".encode() in revealed.content
    assert "no-store" in revealed["Cache-Control"]
    event = AuditEvent.objects.get(action="token.revealed")
    assert event.actor == owner and event.details == {"token_id": "abcdef"}
    join = client.post(url + "abcdef/join-command/", {"role": "worker"})
    assert b"kubeadm join 10.0.0.10:6443 --token abcdef." + SECRET.encode() in join.content
    assert b"--discovery-token-ca-cert-hash sha256:abab" in join.content
    assert AuditEvent.objects.filter(action="token.join_command_revealed").count() == 1
    assert SECRET not in str(list(AuditEvent.objects.values_list("details", flat=True)))


@pytest.mark.django_db
def test_bad_create_reaches_no_cluster_and_saves_nothing(client, owner, cluster):
    # The cluster has no CA and no kubeconfig: any API call would fail. Validation comes first.
    client.force_login(owner)
    response = client.post(f"/clusters/{cluster.name}/tokens/new/", {"ttl": "0", "usages": ["signing"]})
    assert response.status_code == 400
    assert b"a TTL of zero" in response.content
    assert not BootstrapToken.objects.exists() and not AuditEvent.objects.filter(action__startswith="token").exists()


@pytest.mark.django_db
def test_unreachable_cluster_gives_a_retryable_message_and_no_row(client, owner, cluster):
    client.force_login(owner)
    response = client.post(
        f"/clusters/{cluster.name}/tokens/new/",
        {
            "ttl": "1h",
            "usages": ["signing", "authentication"],
            "groups": "system:bootstrappers:kubeadm:default-node-token",
        },
    )
    assert response.status_code == 400
    # Never initialized: refused with what to do, before any connection (clusters.preconditions).
    assert b"Nothing was created: cluster c1 is not initialized" in response.content
    assert b"initialize the cluster first" in response.content
    assert not BootstrapToken.objects.exists()


@pytest.mark.django_db
def test_cluster_page_panel_shows_state_and_countdown(client, owner, cluster, token):
    client.force_login(owner)
    page = client.get(f"/clusters/{cluster.name}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-state="valid"' in html and "data-expires=" in html and "token-timeline" in html
    assert SECRET not in html

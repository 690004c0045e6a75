"""Issue 18 item 6: one vocabulary per object. The button, the state shown and the audit action
agree (Revoke -> revoked -> token.revoked; a token used by its node shows "consumed", as
token.consumed says); "expiring" is one rule for tokens and certificate keys; the Actions column
is one row and a revealed join command gets the table's width."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from clusters.models import Cluster
from kubeadm import pki
from nodes.models import Node
from tests.conftest import team_of
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities
from tokens import sweeps, vocabulary
from tokens.models import BootstrapToken, CertificateKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(make_user):
    return make_user("ada", role="admin")


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


@pytest.fixture
def cluster(admin, ca):
    # Initialized, with the CA Kubeboard holds: Rotate and Revoke are offered only where the API
    # server can be asked (clusters.preconditions; tests/unit/test_token_preconditions.py).
    made = make_cluster("c1", team=team_of(admin), ca_pin_hash="sha256:" + "ab" * 32, status=Cluster.Status.RUNNING)
    store_authorities(made, {"ca": ca})
    return made


def _token(cluster, token_id: str, **fields) -> BootstrapToken:
    fields.setdefault("expires_at", timezone.now() + timedelta(hours=20))
    return BootstrapToken.objects.create(cluster=cluster, token_id=token_id, secret="0123456789abcdef", **fields)


def test_every_way_a_token_ends_shows_the_word_its_audit_action_uses():
    # The sweep's records and the person's Revoke: each ending is a state of the same name.
    for action in ("token.revoked", "token.consumed", "token.retired", "token.lifetime_ended"):
        state = vocabulary.ending_for(action)
        assert action.removeprefix("token.").replace("_", "-") == state
        assert vocabulary.state_label(state) == action.removeprefix("token.").replace("_", " ")
    assert set(sweeps.ACTION_RECORDS.values()) - {"token.create_abandoned", "token.rotated"} <= set(vocabulary.ENDINGS)
    # Every state and action has a label and a meaning, and the README's table lists each of them.
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    table = readme[readme.index("| object | shown as |") :].split("\n\n", 1)[0]
    for term in vocabulary.TOKEN_STATES + vocabulary.CERTIFICATE_KEY_STATES + vocabulary.TOKEN_ACTIONS:
        assert term.label and term.meaning
        assert f"| {term.label} |" in table, f"README's vocabulary table lacks {term.label!r}"
        if term.audit:
            assert f"`{term.audit}`" in table, f"README's vocabulary table lacks {term.audit}"


def test_a_consumed_token_shows_consumed_and_its_node_not_revoked(client, admin, cluster):
    node = Node.objects.create(cluster=cluster, name="node3", address="10.0.0.23")
    _token(cluster, "cccccc", status="revoked", ended_as="consumed", node=node, node_joined_at=timezone.now())
    _token(cluster, "tttttt", status="revoked", ended_as="retired")
    _token(cluster, "rrrrrr", status="revoked", ended_as="revoked")
    _token(cluster, "llllll", status="revoked", ended_as="lifetime-ended")
    # A row revoked before endings were recorded still reads "revoked".
    _token(cluster, "oooooo", status="revoked")
    client.force_login(admin)
    page = client.get(f"/clusters/{cluster.name}/tokens/").content.decode()

    def state_of(token_id: str) -> tuple[str, str]:
        row = re.search(rf'<tr id="token-{token_id}"[^>]*data-state="([^"]+)".*?</tr>', page, re.S)
        label = re.search(r'<span class="state [^"]+">([^<]+)</span>', row.group(0)).group(1)
        return row.group(1), label

    assert state_of("cccccc") == ("consumed", "consumed")
    assert "used by node3" in page
    assert state_of("tttttt") == ("retired", "retired")
    assert state_of("rrrrrr") == ("revoked", "revoked")
    assert state_of("llllll") == ("lifetime-ended", "lifetime ended")
    assert state_of("oooooo") == ("revoked", "revoked")


def test_the_revoke_button_says_revoke_and_the_refusal_says_revoked(client, admin, cluster):
    token = _token(cluster, "abcdef")
    client.force_login(admin)
    page = client.get(f"/clusters/{cluster.name}/tokens/").content.decode()
    row = re.search(r'<tr id="token-abcdef".*?</tr>', page, re.S).group(0)
    assert ">Revoke</button>" in row and ">Delete<" not in row
    assert f'data-confirm="Revoke token {token.token_id}?' in row
    BootstrapToken.objects.filter(pk=token.pk).update(status="revoked", ended_as="revoked")
    response = client.post(f"/clusters/{cluster.name}/tokens/abcdef/delete/", follow=True)
    assert "Token abcdef was not revoked: token abcdef is revoked; nothing to revoke" in response.content.decode()
    assert AuditEvent.objects.filter(action="token.revoked", outcome="denied").count() == 1


@pytest.mark.parametrize("lifetime", [timedelta(hours=2), timedelta(hours=24)])
def test_expiring_is_the_last_quarter_of_the_lifetime_for_tokens_and_certificate_keys(cluster, lifetime):
    made = timezone.now()
    token = _token(cluster, "aaaaaa", created_at=made, expires_at=made + lifetime)
    key = CertificateKey.objects.create(cluster=cluster, key="00" * 32, created_at=made, expires_at=made + lifetime)
    for elapsed, state in ((timedelta(0), "valid"), (lifetime * 0.74, "valid"), (lifetime * 0.76, "expiring")):
        assert token.state(made + elapsed) == state, (lifetime, elapsed)
        assert key.state(made + elapsed) == state, (lifetime, elapsed)
    assert token.expiring_seconds == key.expiring_seconds == lifetime.total_seconds() / 4


def test_a_fresh_two_hour_token_and_certificate_key_both_read_valid(client, admin, cluster):
    _token(cluster, "aaaaaa", expires_at=timezone.now() + timedelta(hours=2))
    CertificateKey.objects.create(cluster=cluster, key="00" * 32, expires_at=timezone.now() + timedelta(hours=2))
    client.force_login(admin)
    page = client.get(f"/clusters/{cluster.name}/tokens/").content.decode()
    assert re.search(r'<tr id="token-aaaaaa"[^>]*data-state="valid"', page)
    assert re.search(r'<tr id="certificate-key-\d+" data-state="valid"', page)
    assert "Tokens (1 usable: valid, expiring or external)" in page
    assert re.search(r'data-soon="(1799|1800)"', page), "the countdown turns amber at the same moment the state does"


def test_the_actions_are_one_row_and_a_revealed_command_spans_the_table(client, admin, cluster):
    _token(cluster, "abcdef")
    client.force_login(admin)
    page = client.get(f"/clusters/{cluster.name}/tokens/").content.decode()
    actions = re.search(r'<td class="token-actions">(.*?)</td>', page, re.S).group(1)
    menu = re.search(r'<details class="token-menu">.*?</details>', actions, re.S).group(0)
    outside = actions.replace(menu, "")
    assert outside.count("<button") == 2, "Rotate and Revoke; the reveals are in one menu"
    assert menu.count("<button") == 3
    assert 'id="reveal-abcdef"' not in actions, "what a reveal shows is not in the Actions cell"
    assert re.search(r'<tr class="revealed-row"[^>]*><td colspan="8"><div class="revealed" id="reveal-abcdef">', page)
    shown = client.post(f"/clusters/{cluster.name}/tokens/abcdef/join-command/", {"role": "worker"})
    assert shown.status_code == 200
    assert '<pre class="secret" id="join-command">kubeadm join' in shown.content.decode()


def test_policy_saved_names_what_changed_by_its_label(client, admin, cluster):
    client.force_login(admin)
    data = {
        "keep_valid_token": "on",
        "default_ttl": "24h",
        "max_ttl": "7d",
        "max_lifetime": "30d",
        "rotate_before": "2h",
        "rotation_grace": "15m",
        "revoke_after_join": "on",
    }
    response = client.post(f"/clusters/{cluster.name}/tokens/policy/", data, follow=True)
    assert "Token policy saved (keep a valid join token)." in response.content.decode()


def test_a_too_long_lifetime_is_refused_in_words(client, admin, cluster):
    client.force_login(admin)
    response = client.post(f"/clusters/{cluster.name}/tokens/new/", {"ttl": "30d", "usages": ["signing"]})
    text = response.content.decode()
    assert response.status_code == 400
    assert "lifetime: 30 days is longer than this cluster&#x27;s maximum TTL of 7 days" in text
    assert "ttl:" not in text

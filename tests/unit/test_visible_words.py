"""Issue 18 item 6: no internal names in what a person reads. Every page of Kubeboard (every route
of the permission matrix that answers a GET with a page, for a superuser and for a viewer, on a
database with tokens in every state, certificate keys, audit records and a policy change) and
the flash messages and form errors of the token and team forms are scanned for snake_case
identifiers ("keep_valid_token", "token_id") in their visible text. Text inside <code> and <pre>
(commands, file contents, audit action names), <script>/<style>, form values and attribute values
are not read as prose; the few real kubeadm/Kubernetes names that may still appear in prose are
listed in ALLOWED, each with where it comes from.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from audit.services import record
from tests import permission_matrix as pm
from tests.unit.test_permission_matrix import SITE_ROUTES, url_for
from tokens.models import BootstrapToken, CertificateKey, TokenPolicy
from tokens.policies import policy_for

pytestmark = pytest.mark.django_db

SNAKE = re.compile(r"(?<![\w./:-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/-])")
# Legitimate names a person may meet in prose: the tools Kubeboard drives spell them so.
ALLOWED = frozenset(
    {
        "authorized_keys",  # OpenSSH's file (~/.ssh/authorized_keys), a node page's heading
        "version_number",  # the {version_number} placeholder a person types in the upgrade's package command
    }
)
# Elements whose text is not prose: code and commands, scripts, styles, and form values.
NOT_PROSE = {"code", "pre", "script", "style", "textarea", "kbd", "samp"}


class _Prose(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag in NOT_PROSE:
            self.depth += 1

    def handle_endtag(self, tag) -> None:
        if tag in NOT_PROSE and self.depth:
            self.depth -= 1

    def handle_data(self, data) -> None:
        if not self.depth:
            self.parts.append(data)


def snake_words(html: str) -> set[str]:
    parser = _Prose()
    parser.feed(html)
    return {word for word in SNAKE.findall(" ".join(parser.parts)) if word not in ALLOWED}


def test_the_scanner_finds_a_field_name_in_prose_and_nowhere_else():
    html = (
        '<p title="keep_valid_token">Token policy saved (keep_valid_token).</p>'
        "<code>token.join_command_revealed</code><pre>kubeadm_certs</pre><p>a snake-case-free sentence</p>"
    )
    assert snake_words(html) == {"keep_valid_token"}


def _populate(world) -> None:
    """Tokens in every state the vocabulary names, a certificate key, a policy change on record."""
    now = timezone.now()
    cluster = world.cluster
    for token_id, fields in {
        "vvvvvv": {"expires_at": now + timedelta(hours=20), "created_at": now},
        "eeeeee": {"expires_at": now + timedelta(minutes=10), "created_at": now - timedelta(hours=2)},
        "xxxxxx": {"expires_at": now - timedelta(hours=1), "status": "expired"},
        "rrrrrr": {"status": "revoked", "ended_as": "revoked", "revoke_reason": "revoked in the UI"},
        "cccccc": {"status": "revoked", "ended_as": "consumed", "node": world.node, "node_joined_at": now},
        "tttttt": {"status": "revoked", "ended_as": "retired", "revoke_reason": "rotated; successor vvvvvv"},
        "llllll": {"status": "revoked", "ended_as": "lifetime-ended"},
        "oooooo": {"origin": "external", "purpose": "external", "expires_at": now + timedelta(hours=5)},
        "gggggg": {"status": "gone", "gone_at": now},
    }.items():
        BootstrapToken.objects.create(cluster=cluster, token_id=token_id, secret="0123456789abcdef", **fields)
    CertificateKey.objects.create(cluster=cluster, key="00" * 32, expires_at=now + timedelta(hours=2))
    policy = policy_for(cluster)
    record(
        "token_policy.changed",
        actor=world.users["admin"],
        obj=cluster,
        cluster=cluster,
        details={"keep_valid_token": {"from": False, "to": True}},
    )
    TokenPolicy.objects.filter(pk=policy.pk).update(keep_valid_token=True)


PAGES = sorted(
    key
    for key, route in pm.MATRIX.items()
    if key in SITE_ROUTES and route.GET is not None and 200 in (route.GET[pm.ROLES.index("superuser")],)
)


def test_the_crawl_reaches_the_pages_people_read():
    for page in ("clusters:list", "clusters:detail", "tokens:list", "teams:list", "teams:detail", "audit:history"):
        assert page in PAGES, page


@pytest.mark.parametrize("role", ["superuser", "viewer"])
def test_no_page_shows_a_snake_case_name(role):
    world = pm.build_world()
    _populate(world)
    client = Client()
    client.force_login(world.users[role])
    found: dict[str, set[str]] = {}
    read = 0
    for key in PAGES:
        with transaction.atomic():
            response = client.get(url_for(key, pm.MATRIX[key], world))
            transaction.set_rollback(True)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        read += 1
        words = snake_words(response.content.decode())
        if words:
            found[key] = words
    assert read >= 10, f"only {read} pages were read"
    assert not found, "internal names in page text: " + "; ".join(
        f"{page}: {', '.join(sorted(words))}" for page, words in sorted(found.items())
    )


def _post(client: Client, url: str, data: dict) -> str:
    """The page a person reads after the POST: the form with its errors, or where it redirected
    to with the flash message."""
    response = client.post(url, data, follow=True)
    shown = [str(message) for message in response.context["messages"]] if response.context else []
    return response.content.decode() + "".join(f"<p>{text}</p>" for text in shown)


def test_no_flash_message_or_form_error_shows_a_snake_case_name():
    world = pm.build_world()
    _populate(world)
    admin, root = Client(), Client()
    admin.force_login(world.users["admin"])
    root.force_login(world.users["superuser"])
    name = world.cluster.name
    policy = {
        "keep_valid_token": "on",
        "default_ttl": "12h",
        "max_ttl": "7d",
        "max_lifetime": "30d",
        "rotate_before": "1h",
        "rotation_grace": "15m",
    }
    cases = {
        "token lifetime too long": (admin, f"/clusters/{name}/tokens/new/", {"ttl": "8d", "usages": ["signing"]}),
        "token lifetime zero": (admin, f"/clusters/{name}/tokens/new/", {"ttl": "0"}),
        "token lifetime and expiry": (
            admin,
            f"/clusters/{name}/tokens/new/",
            {"ttl": "1h", "expires_at": "2099-01-01T00:00"},
        ),
        "token expiry in the past": (admin, f"/clusters/{name}/tokens/new/", {"expires_at": "2001-01-01T00:00"}),
        "policy saved": (admin, f"/clusters/{name}/tokens/policy/", policy),
        "policy refused": (admin, f"/clusters/{name}/tokens/policy/", {**policy, "rotate_before": "1d"}),
        "revoke refused": (admin, f"/clusters/{name}/tokens/rrrrrr/delete/", {}),
        "member unknown": (admin, f"/teams/{world.team.pk}/members/", {"username": "nobody", "role": "viewer"}),
        "member unknown, superuser": (
            root,
            f"/teams/{world.team.pk}/members/",
            {"username": "nobody", "role": "viewer"},
        ),
        "user exists": (root, "/teams/users/new/", {"username": "blue-viewer", "role": "viewer"}),
        "team created": (root, "/teams/new/", {"name": "orange"}),
    }
    found = {}
    for case, (client, url, data) in cases.items():
        with transaction.atomic():
            words = snake_words(_post(client, url, data))
            transaction.set_rollback(True)
        if words:
            found[case] = words
    assert not found, "internal names in messages or form errors: " + "; ".join(
        f"{case}: {', '.join(sorted(words))}" for case, words in sorted(found.items())
    )

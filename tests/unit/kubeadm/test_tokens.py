"""Bootstrap tokens and the cluster-info JWS, against cluster-bootstrap's vectors."""

import base64
import datetime
import re
from datetime import timedelta

import pytest

from kubeadm import tokens
from kubeadm.errors import JWSError, TokenFormatError

CONTENT = "Hello from the other side. I must have called a thousand times."

# staging/src/k8s.io/cluster-bootstrap/token/jws/jws_test.go (kubeadm-facts.md §11.4)
JWS_VECTORS = [
    (
        CONTENT,
        "joshua",
        "my voice is my passcode",
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8",
    ),
    (
        "",
        "joshua",
        "my voice is my passcode",
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk",
    ),
    (CONTENT, "joshua", "", "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8"),
]


@pytest.mark.parametrize(("content", "token_id", "secret", "expected"), JWS_VECTORS)
def test_detached_jws_matches_cluster_bootstrap_vectors(content, token_id, secret, expected):
    assert tokens.compute_detached_jws(content, token_id, secret) == expected
    tokens.verify_detached_jws(expected, content, token_id, secret)


def test_jws_tampered_content_or_secret_is_rejected():
    content, token_id, secret, signature = JWS_VECTORS[0]
    with pytest.raises(JWSError) as err:
        tokens.verify_detached_jws(signature, content + " ", token_id, secret)
    assert secret not in str(err.value)
    with pytest.raises(JWSError):
        tokens.verify_detached_jws(signature, content, token_id, "another passcode")
    with pytest.raises(JWSError, match="token id"):
        tokens.verify_detached_jws(signature, content, "abcdef", secret)
    with pytest.raises(JWSError, match="malformed"):
        tokens.verify_detached_jws("not-a-jws", content, token_id, secret)
    assert not tokens.is_valid_detached_jws(signature, content + "x", token_id, secret)


def test_generated_tokens_have_the_kubeadm_shape_and_differ():
    seen = set()
    for _ in range(200):
        token = tokens.generate_token()
        assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", str(token))
        seen.add(str(token))
    assert len(seen) == 200


def test_generated_characters_cover_the_alphabet():
    chars = "".join(str(tokens.generate_token()).replace(".", "") for _ in range(300))
    assert set(chars) == set(tokens.TOKEN_ALPHABET)


def test_repr_never_shows_the_secret():
    token = tokens.parse_token("abcdef.0123456789abcdef")
    assert "0123456789abcdef" not in repr(token)
    assert str(token) == "abcdef.0123456789abcdef"
    assert (token.id, token.secret) == ("abcdef", "0123456789abcdef")


@pytest.mark.parametrize(
    "bad",
    [
        "abcdef.0123456789abcdeF",
        "abcdef0123456789abcdef",
        "abcde.0123456789abcdef1",
        "abcdef.0123456789abcde",
        "ABCDEF.0123456789abcdef",
        "abcdef.0123456789abcdef\n",
        "",
        None,
    ],
)
def test_malformed_tokens_raise_without_echoing_the_secret(bad):
    with pytest.raises(TokenFormatError) as err:
        tokens.parse_token(bad)
    message = str(err.value)
    assert "[a-z0-9]{6}.[a-z0-9]{16}" in message
    if isinstance(bad, str) and "." in bad:
        assert bad.split(".", 1)[1] not in message


def test_bootstrap_token_secret_matches_kubeadm():
    now = datetime.datetime(2025, 1, 1, 3, 4, 5, 999, tzinfo=datetime.UTC)
    secret = tokens.bootstrap_token_secret("abcdef.0123456789abcdef", description="for node-1", now=now)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert data == {
        "token-id": "abcdef",
        "token-secret": "0123456789abcdef",
        "description": "for node-1",
        "expiration": "2025-01-02T03:04:05Z",
        "usage-bootstrap-signing": "true",
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    }


def test_secret_without_ttl_usages_or_groups_like_the_upload_certs_token():
    secret = tokens.bootstrap_token_secret("abcdef.0123456789abcdef", ttl=None, usages=(), groups=())
    assert sorted(secret["data"]) == ["token-id", "token-secret"]


def test_expires_wins_over_ttl_and_is_utc():
    tz = datetime.timezone(timedelta(hours=2))
    data = tokens.secret_data(
        "abcdef.0123456789abcdef", ttl=timedelta(hours=1), expiration=datetime.datetime(2030, 6, 1, 12, 0, 0, tzinfo=tz)
    )
    assert data["expiration"] == "2030-06-01T10:00:00Z"


def test_secret_round_trips():
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    secret = tokens.bootstrap_token_secret("abcdef.0123456789abcdef", description="d", now=now)
    info = tokens.token_from_secret(secret)
    assert str(info.token) == "abcdef.0123456789abcdef"
    assert info.expiration == now + timedelta(hours=24)
    assert set(info.usages) == {"signing", "authentication"}
    assert info.groups == ("system:bootstrappers:kubeadm:default-node-token",)
    assert not info.expired(now) and info.expired(now + timedelta(days=2))


def test_invalid_usages_and_groups_are_rejected():
    with pytest.raises(TokenFormatError, match="usages"):
        tokens.secret_data("abcdef.0123456789abcdef", usages=("signing", "root"))
    with pytest.raises(TokenFormatError, match="system:bootstrappers"):
        tokens.secret_data("abcdef.0123456789abcdef", groups=("system:masters",))
    with pytest.raises(TokenFormatError, match="authentication"):
        tokens.secret_data("abcdef.0123456789abcdef", usages=("signing",))

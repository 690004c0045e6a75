"""Bootstrap tokens: format, generation, the token Secret, cluster-info JWS.

Sources: staging/src/k8s.io/cluster-bootstrap/token/{api/types.go,
util/helpers.go, jws/jws.go}, cmd/kubeadm/app/apis/bootstraptoken/v1/utils.go.
A token secret is never logged, never put in an exception message, and
never shown by repr().
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from kubeadm.errors import JWSError, TokenFormatError

TOKEN_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN_ID_LENGTH = 6
TOKEN_SECRET_LENGTH = 16
TOKEN_RE = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
TOKEN_ID_RE = re.compile(r"[a-z0-9]{6}")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_NAME_PREFIX = "bootstrap-token-"
SECRET_NAMESPACE = "kube-system"
USAGE_PREFIX = "usage-bootstrap-"
KNOWN_USAGES = ("signing", "authentication")
DEFAULT_USAGES = ("signing", "authentication")
DEFAULT_GROUPS = ("system:bootstrappers:kubeadm:default-node-token",)
DEFAULT_TTL = timedelta(hours=24)
GROUP_RE = re.compile(r"system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]")
JWS_KEY_PREFIX = "jws-kubeconfig-"


@dataclass(frozen=True)
class BootstrapTokenString:
    """A parsed "id.secret" token. repr() hides the secret; str() is the token."""

    id: str
    secret: str = field(repr=False)

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"

    def __repr__(self) -> str:
        return f"BootstrapTokenString(id={self.id!r}, secret=<redacted>)"

    @property
    def secret_name(self) -> str:
        return secret_name(self.id)


def _random_chars(n: int) -> str:
    """cluster-bootstrap randBytes: CSPRNG bytes, rejecting values >= 252 so
    that ``b % 36`` is unbiased (252 = 36 * 7)."""
    out: list[str] = []
    while len(out) < n:
        for b in secrets.token_bytes(n * 2):
            if b >= 252:
                continue
            out.append(TOKEN_ALPHABET[b % 36])
            if len(out) == n:
                break
    return "".join(out)


def generate_token() -> BootstrapTokenString:
    """A new random bootstrap token, as `kubeadm token generate` makes it."""
    return BootstrapTokenString(_random_chars(TOKEN_ID_LENGTH), _random_chars(TOKEN_SECRET_LENGTH))


def _describe_shape(s: object) -> str:
    """Say what is wrong with a token without revealing its secret part."""
    if not isinstance(s, str):
        return f"a {type(s).__name__}"
    if "." not in s:
        return f"{len(s)} characters with no '.' separator"
    token_id, _, token_secret = s.partition(".")
    id_part = (
        f"id {token_id!r}"
        if TOKEN_ID_RE.fullmatch(token_id)
        else f"an id of {len(token_id)} characters that is not [a-z0-9]{{6}}"
    )
    secret_ok = bool(re.fullmatch(r"[a-z0-9]{16}", token_secret))
    secret_part = (
        "a well-formed secret"
        if secret_ok
        else f"a secret of {len(token_secret)} characters that is not [a-z0-9]{{16}}"
    )
    return f"{id_part} and {secret_part}"


def parse_token(s: str, *, field: str = "token") -> BootstrapTokenString:
    """Parse "id.secret"; raises TokenFormatError whose message never echoes the secret."""
    if isinstance(s, str):
        match = TOKEN_RE.fullmatch(s)
        if match:
            return BootstrapTokenString(match.group(1), match.group(2))
    raise TokenFormatError(
        f"{field}: expected a bootstrap token of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}, found {_describe_shape(s)}"
    )


def is_valid_token(s: str) -> bool:
    return isinstance(s, str) and TOKEN_RE.fullmatch(s) is not None


def parse_token_id(s: str, *, field: str = "token id") -> str:
    """Accept a token id, or a full token (returning its id) as `kubeadm token delete` does."""
    if isinstance(s, str) and TOKEN_ID_RE.fullmatch(s):
        return s
    return parse_token(s, field=field).id


def secret_name(token_id: str) -> str:
    """bootstrap-token-<id> (cluster-bootstrap BootstrapTokenSecretName)."""
    return SECRET_NAME_PREFIX + token_id


def validate_usages(usages: list[str] | tuple[str, ...], *, field: str = "usages") -> None:
    bad = [u for u in usages if u not in KNOWN_USAGES]
    if bad:
        raise TokenFormatError(f"{field}: expected usages from {', '.join(KNOWN_USAGES)}, found {', '.join(bad)}")


def validate_groups(
    groups: list[str] | tuple[str, ...], usages: list[str] | tuple[str, ...] = DEFAULT_USAGES, *, field: str = "groups"
) -> None:
    """kubeadm's ValidateTokenGroups + cluster-bootstrap ValidateBootstrapGroupName."""
    if groups and "authentication" not in usages:
        raise TokenFormatError(f'{field}: token groups cannot be specified unless usages include "authentication"')
    for group in groups:
        if not GROUP_RE.fullmatch(group):
            raise TokenFormatError(
                f"{field}: expected a group matching system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9], found {group!r}"
            )


def format_expiration(value: datetime.datetime) -> str:
    """UTC RFC 3339 with seconds precision, as kubeadm writes `expiration`."""
    if value.tzinfo is None:
        raise TokenFormatError("expiration: expected a time with a time zone, found a naive datetime")
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_data(
    token: BootstrapTokenString | str,
    *,
    description: str = "",
    ttl: timedelta | None = DEFAULT_TTL,
    expiration: datetime.datetime | None = None,
    usages: list[str] | tuple[str, ...] = DEFAULT_USAGES,
    groups: list[str] | tuple[str, ...] = DEFAULT_GROUPS,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """The token Secret's data as plain strings (encodeTokenSecretData).

    ``expiration`` wins over ``ttl``; a ttl of None or 0 means no expiration.
    kubeadm's own defaults (24h, signing+authentication, default group) apply
    when not given; pass usages=() / groups=() for a token without them.
    """
    tok = token if isinstance(token, BootstrapTokenString) else parse_token(token)
    validate_usages(usages)
    validate_groups(groups, usages)
    data = {"token-id": tok.id, "token-secret": tok.secret}
    if description:
        data["description"] = description
    if expiration is not None:
        data["expiration"] = format_expiration(expiration)
    elif ttl is not None and ttl > timedelta(0):
        current = now or datetime.datetime.now(datetime.UTC)
        data["expiration"] = format_expiration(current + ttl)
    for usage in usages:
        data[USAGE_PREFIX + usage] = "true"
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    return data


def bootstrap_token_secret(
    token: BootstrapTokenString | str,
    *,
    description: str = "",
    ttl: timedelta | None = DEFAULT_TTL,
    expiration: datetime.datetime | None = None,
    usages: list[str] | tuple[str, ...] = DEFAULT_USAGES,
    groups: list[str] | tuple[str, ...] = DEFAULT_GROUPS,
    now: datetime.datetime | None = None,
) -> dict:
    """The bootstrap-token-<id> Secret exactly as kubeadm creates it
    (BootstrapTokenToSecret): kube-system, type bootstrap.kubernetes.io/token,
    ``data`` base64-encoded as the Kubernetes API takes it."""
    tok = token if isinstance(token, BootstrapTokenString) else parse_token(token)
    data = secret_data(
        tok, description=description, ttl=ttl, expiration=expiration, usages=usages, groups=groups, now=now
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(tok.id), "namespace": SECRET_NAMESPACE},
        "type": SECRET_TYPE,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@dataclass(frozen=True)
class BootstrapTokenInfo:
    """What a token Secret says (BootstrapTokenFromSecret); repr hides the secret."""

    token: BootstrapTokenString
    description: str = ""
    expiration: datetime.datetime | None = None
    usages: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def expired(self, now: datetime.datetime | None = None) -> bool:
        if self.expiration is None:
            return False
        return (now or datetime.datetime.now(datetime.UTC)) > self.expiration


def token_from_secret(secret: dict) -> BootstrapTokenInfo:
    """Read a bootstrap token Secret (``data`` base64 or ``stringData``) back."""
    if not isinstance(secret, dict):
        raise TokenFormatError(f"secret: expected a Secret mapping, found a {type(secret).__name__}")
    name = (secret.get("metadata") or {}).get("name", "")
    raw: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            raw[key] = base64.b64decode(value, validate=True).decode()
        except (ValueError, TypeError):
            raise TokenFormatError(f"secret {name}: data key {key!r} is not valid base64") from None
    raw.update(secret.get("stringData") or {})
    token_id = raw.get("token-id", "")
    if not TOKEN_ID_RE.fullmatch(token_id):
        raise TokenFormatError(f"secret {name}: expected data key token-id of 6 [a-z0-9], found {token_id!r}")
    if name and name != secret_name(token_id):
        raise TokenFormatError(f"secret name: expected {secret_name(token_id)!r}, found {name!r}")
    token = parse_token(f"{token_id}.{raw.get('token-secret', '')}", field=f"secret {name} token-secret")
    expiration = None
    if "expiration" in raw:
        try:
            expiration = datetime.datetime.fromisoformat(raw["expiration"].replace("Z", "+00:00"))
        except ValueError:
            raise TokenFormatError(
                f"secret {name} expiration: expected RFC 3339 time, found {raw['expiration']!r}"
            ) from None
    usages = tuple(k[len(USAGE_PREFIX) :] for k in sorted(raw) if k.startswith(USAGE_PREFIX) and raw[k] == "true")
    groups = tuple(g for g in raw.get("auth-extra-groups", "").split(",") if g)
    return BootstrapTokenInfo(
        token=token, description=raw.get("description", ""), expiration=expiration, usages=usages, groups=groups
    )


# --- detached JWS over the cluster-info kubeconfig -------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compute_detached_jws(content: str | bytes, token_id: str, token_secret: str) -> str:
    """jws.ComputeDetachedSignature: HS256 keyed with the token secret only,
    header {"alg":"HS256","kid":"<id>"}, returned as header..signature."""
    payload = content.encode("utf-8") if isinstance(content, str) else content
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(payload)}".encode("ascii")
    mac = hmac.new(token_secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(mac)}"


def verify_detached_jws(detached: str, content: str | bytes, token_id: str, token_secret: str) -> None:
    """jws.DetachedTokenIsValid; raises JWSError when the signature does not match."""
    if not isinstance(detached, str) or detached.count(".") != 2 or ".." not in detached:
        raise JWSError("jws: expected a detached JWS of the form <header>..<signature>, found a malformed value")
    expected = compute_detached_jws(content, token_id, token_secret)
    if not hmac.compare_digest(expected.encode(), detached.encode()):
        header = detached.split(".", 1)[0]
        try:
            kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))).get("kid")
        except ValueError:
            kid = None
        if kid != token_id:
            raise JWSError(f"jws: expected a signature for token id {token_id!r}, found one for {kid!r}")
        raise JWSError(
            f"jws: the signature for token id {token_id!r} does not match the content "
            "(wrong token secret, or the content changed after signing)"
        )


def is_valid_detached_jws(detached: str, content: str | bytes, token_id: str, token_secret: str) -> bool:
    try:
        verify_detached_jws(detached, content, token_id, token_secret)
    except JWSError:
        return False
    return True

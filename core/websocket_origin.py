"""Websocket handshakes accepted only from Kubeboard's own pages: the same-origin rule.

A browser sends the page's origin (scheme, host and port) with every websocket handshake, and
the session cookie along with it, whatever site the page came from. Accepting any origin whose
host name is allowed (channels' ``AllowedHostsOriginValidator``) lets a page served on another
port or scheme of the same host (``http://127.0.0.1:9999`` for a site on 8766) open streams with
the user's cookie. Here the origin must equal the site's own, as Django's CSRF check requires
for a form: the scheme the site is served with, and the host and port the browser asked for
(the ``Host`` header, itself one of ``ALLOWED_HOSTS``), or one of ``CSRF_TRUSTED_ORIGINS``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in; None if malformed."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or scheme not in DEFAULT_PORTS:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def _served_over_https(headers: dict[bytes, bytes], scope: dict) -> bool:
    if scope.get("scheme") == "wss" or getattr(settings, "TLS", False):
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        return headers.get(header, b"").decode("latin-1").split(",")[0].strip() == value
    return False


def origin_allowed(scope: dict) -> bool:
    """Whether the handshake's Origin is the site's own origin (or a trusted one)."""
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    origin = headers.get(b"origin", b"").decode("latin-1").strip()
    host = headers.get(b"host", b"").decode("latin-1").strip()
    if not origin or origin == "null":
        return False
    scheme, sep, netloc = origin.partition("://")
    if not sep:
        return False
    found = _origin_key(scheme.lower(), netloc)
    if found is None:
        return False
    if any(found == _origin_key(*trusted.lower().split("://", 1)) for trusted in _trusted_origins()):
        return True
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    own = _origin_key("https" if _served_over_https(headers, scope) else "http", host)
    return own is not None and found == own


def _trusted_origins() -> list[str]:
    # Only exact origins: a wildcard entry of CSRF_TRUSTED_ORIGINS is not a websocket origin.
    return [o for o in settings.CSRF_TRUSTED_ORIGINS if "://" in o and "*" not in o]


class SameOriginValidator:
    """ASGI middleware: a websocket handshake from another origin is refused (HTTP 403)."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator guards websocket connections only")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

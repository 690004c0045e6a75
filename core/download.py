"""One bounded HTTPS download (a custom pod network manifest given by its URL).

Every connection passes ``core.network.check_destination`` right before its TCP connect (the
test bed's route guard, or nothing in production), like kube/'s API client; no proxy is used.
Only https:// is fetched, redirects included (at most ``MAX_REDIRECTS``, each to https://
again); the server's certificate is verified against the system's CAs (OpenSSL's defaults, so
``SSL_CERT_FILE`` names a private CA's bundle); the body is read in pieces and refused past
``max_bytes``, and the whole download past ``timeout`` seconds, whatever the server sends.
"""

from __future__ import annotations

import ssl
import time
from urllib.parse import urljoin, urlsplit

import urllib3

from core.network import ConnectionRefused, check_destination

MAX_REDIRECTS = 3
CHUNK = 64 * 1024


class DownloadError(Exception):
    """The download failed or was refused; the message names the URL and why."""


class _GuardedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    def _new_conn(self):
        check_destination(self.host, self.port or 443)
        return super()._new_conn()


def shown(url: str) -> str:
    """The URL as messages, pages and the audit trail show it: no user:password@ and no query
    (a pre-signed URL's signature is a credential), at most 200 characters."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc="…@" + parts.netloc.rsplit("@", 1)[1])
    if parts.query:
        parts = parts._replace(query="…")
    url = parts._replace(fragment="").geturl()
    return url if len(url) <= 200 else url[:200] + "…"


def url_problem(url: str) -> str:
    """Why ``url`` cannot be downloaded ("" when it can): https with a host, no credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is no number raises here
    except ValueError as exc:
        return f"{shown(url)} is not a valid URL ({exc})"
    if parts.scheme != "https" or not parts.hostname:
        return f"{shown(url)} is not an https:// URL; Kubeboard downloads only over TLS"
    if parts.username or parts.password:
        return "the URL carries a user name or password; give a URL that needs none"
    if len(url) > 2048:
        return "the URL is longer than 2,048 characters"
    return ""


def fetch(url: str, *, max_bytes: int, timeout: float) -> bytes:
    """The body of ``url`` (200 only), at most ``max_bytes``, within ``timeout`` seconds in all."""
    problem = url_problem(url)
    if problem:
        raise DownloadError(problem)
    deadline = time.monotonic() + timeout
    manager = urllib3.PoolManager(
        num_pools=2, ssl_context=ssl.create_default_context(), cert_reqs=ssl.CERT_REQUIRED, retries=False
    )
    manager.pool_classes_by_scheme = {"https": _GuardedHTTPSConnectionPool}
    try:
        for _ in range(MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            response = manager.request(
                "GET",
                url,
                preload_content=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=min(10.0, left), read=max(min(left, 30.0), 0.1)),
                headers={"Accept": "application/yaml, text/plain, */*", "User-Agent": "kubeboard"},
            )
            try:
                if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    problem = url_problem(url)
                    if problem:
                        raise DownloadError(f"redirected to {problem}")
                    continue
                if response.status != 200:
                    raise DownloadError(f"{shown(url)} answered HTTP {response.status} {response.reason or ''}".strip())
                return _read(response, url, max_bytes, deadline, timeout)
            finally:
                response.release_conn()
        raise DownloadError(f"{shown(url)}: more than {MAX_REDIRECTS} redirects")
    except ConnectionRefused as exc:
        raise DownloadError(f"{shown(url)}: {exc}") from None
    except urllib3.exceptions.SSLError as exc:
        raise DownloadError(
            f"{shown(url)}: the server's TLS certificate is not trusted ({_reason(exc)}); "
            "a private CA's bundle is named by SSL_CERT_FILE"
        ) from None
    except (urllib3.exceptions.TimeoutError, TimeoutError):
        raise DownloadError(f"{shown(url)}: no answer within {timeout:.0f} s") from None
    except urllib3.exceptions.HTTPError as exc:
        raise DownloadError(f"{shown(url)}: {_reason(exc)}") from None
    finally:
        manager.clear()


def _read(response, url: str, max_bytes: int, deadline: float, timeout: float) -> bytes:
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise DownloadError(f"{shown(url)} is {int(length)} bytes; at most {max_bytes // 1024} KiB")
    body = bytearray()
    while True:
        if time.monotonic() > deadline:
            raise DownloadError(f"{shown(url)}: not downloaded within {timeout:.0f} s")
        # read1: whatever one receive brings, so a server that drips bytes meets the deadline.
        piece = response.read1(CHUNK)
        if not piece:
            return bytes(body)
        body += piece
        if len(body) > max_bytes:
            raise DownloadError(f"{shown(url)} is larger than {max_bytes // 1024} KiB")


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason)[:300]

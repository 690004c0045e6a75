"""A websocket handshake is accepted only from the site's own origin: the same scheme, host and
port as the page the browser loaded (or an origin in CSRF_TRUSTED_ORIGINS), through the whole
ASGI application. A real daphne server: tests/integration/test_session_revocation.py."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "127.0.0.1:8766"


async def accepted(origin: str | None, host: str = SITE) -> bool:
    from config.asgi import application

    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, "/ws/nowhere/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return connected


async def test_the_sites_own_origin_is_accepted():
    assert await accepted(f"http://{SITE}")
    assert await accepted("http://localhost", host="localhost")
    assert await accepted("http://localhost:80", host="localhost")  # the default port, written out


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another port of the same host: another site
        "http://127.0.0.1",  # port 80, not 8766
        f"https://{SITE}",  # the site is served over plain HTTP here
        "http://localhost:8766",  # an allowed host name, but not the one the page was loaded from
        "http://evil.example:8766",
        "null",
        "",
        "http://[::1",
        f"ftp://{SITE}",
        SITE,
    ],
)
async def test_another_origin_is_refused(origin):
    assert not await accepted(origin)


async def test_no_origin_is_refused():
    assert not await accepted(None)


async def test_a_host_outside_allowed_hosts_is_refused_even_from_its_own_origin():
    assert not await accepted("http://evil.example:8766", host="evil.example:8766")


async def test_behind_tls_only_the_https_origin_is_accepted(settings):
    settings.TLS = True
    assert await accepted(f"https://{SITE}")
    assert not await accepted(f"http://{SITE}")


async def test_behind_a_tls_proxy_the_forwarded_scheme_counts(settings):
    from config.asgi import application

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    async def connect(proto: bytes, origin: bytes) -> bool:
        headers = [(b"host", SITE.encode()), (b"origin", origin), (b"x-forwarded-proto", proto)]
        communicator = WebsocketCommunicator(application, "/ws/nowhere/", headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected

    assert await connect(b"https", f"https://{SITE}".encode())
    assert not await connect(b"https", f"http://{SITE}".encode())
    assert not await connect(b"http", f"https://{SITE}".encode())


async def test_a_trusted_origin_is_accepted(settings):
    # A proxy on another port or name (the README's CSRF_TRUSTED_ORIGINS case).
    settings.CSRF_TRUSTED_ORIGINS = ["https://kubeboard.example.com"]
    assert await accepted("https://kubeboard.example.com")
    assert await accepted("https://kubeboard.example.com:443")
    assert not await accepted("https://kubeboard.example.com:8443")
    assert not await accepted("http://kubeboard.example.com")

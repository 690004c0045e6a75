"""The one gate every outgoing connection to a managed machine or API server passes.

``settings.CONNECTION_GUARD`` names a callable ``guard(address: str) -> None`` that raises to
refuse a destination. Production leaves it empty. The test environment sets it to the test
bed's route guard (``tools.testbed.guard.assert_test_route``), so no packet to a sandbox
address can leave this machine, whatever code path makes the connection.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable

from django.conf import settings
from django.utils.module_loading import import_string


class ConnectionRefused(Exception):
    """The configured guard refused the destination; nothing was sent."""


@functools.cache
def _guard(path: str) -> Callable[[str], None] | None:
    return import_string(path) if path else None


def resolve(host: str, port: int) -> str:
    """The IP address a connection to ``host`` would use (the guard checks addresses, not names)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionRefused(f"cannot resolve host name {host!r}: {exc.strerror or exc}") from exc
    return infos[0][4][0]


def check_destination(host: str, port: int) -> str:
    """Resolve ``host`` and let the guard vet the address; returns the address to connect to."""
    address = resolve(host, port)
    guard = _guard(settings.CONNECTION_GUARD)
    if guard is not None:
        try:
            guard(address)
        except Exception as exc:
            raise ConnectionRefused(f"connection to {host}:{port} refused by the network guard: {exc}") from exc
    return address

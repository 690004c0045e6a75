"""The network safety guard for sandbox node addresses.

Node addresses live on a private bridge in the root network namespace. If that
bridge is missing (never created, or torn down half-way) the kernel would send
a packet for a node address out through the machine's default route, to a
real network. So every connection to a node address must first prove, with
``ip route get``, that the kernel would deliver it directly on the sandbox
bridge. This module is dependency-free so the dashboard can call it too.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

BRIDGE_SUFFIX = "-br"  # sandbox bridges are named <sandbox>-br (sandbox.py)


class NotRoutedViaBridge(Exception):
    """A node address is not routed via the sandbox bridge: do not connect."""


def route_device(addr: str) -> tuple[str | None, str | None]:
    """Return (device, gateway) the kernel would use for ``addr``.

    Only asks the kernel's routing table (``ip -j route get``); sends nothing.
    """
    ipaddress.ip_address(addr)  # refuse host names: they could resolve anywhere
    proc = subprocess.run(
        ["ip", "-j", "route", "get", addr],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return None, None
    routes = json.loads(proc.stdout or "[]")
    if not routes:
        return None, None
    return routes[0].get("dev"), routes[0].get("gateway")


def assert_test_route(addr: str) -> None:
    """The guard for a whole test environment (``KUBEBOARD_CONNECTION_GUARD``).

    Loopback is allowed; any other address must be delivered directly (no gateway) on a
    test-bed bridge (``<sandbox>-br``), so nothing a test connects to can leave the machine.
    """
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError as exc:
        raise NotRoutedViaBridge(f"refusing {addr!r}: not an IP address") from exc
    if ip.is_loopback:
        return
    try:
        dev, gateway = route_device(addr)
    except OSError as exc:
        raise NotRoutedViaBridge(f"refusing {addr}: cannot run `ip route get` ({exc})") from exc
    if dev is None or not dev.endswith(BRIDGE_SUFFIX) or gateway is not None:
        how = f"dev {dev}" if dev else "no route"
        if gateway:
            how += f" via gateway {gateway}"
        raise NotRoutedViaBridge(
            f"refusing to connect to {addr}: `ip route get {addr}` gives {how}, not a test-bed bridge "
            f"(*{BRIDGE_SUFFIX}); in the test environment only loopback and sandbox nodes are reachable"
        )


def assert_routed_via_bridge(addr: str, bridge: str) -> None:
    """Raise NotRoutedViaBridge unless ``addr`` is delivered directly on ``bridge``.

    Call this immediately before connecting to a sandbox node address.
    """
    try:
        dev, gateway = route_device(addr)
    except ValueError as exc:
        raise NotRoutedViaBridge(f"refusing {addr!r}: not an IP address") from exc
    except OSError as exc:  # no `ip` binary: the route cannot be checked, so refuse
        raise NotRoutedViaBridge(f"refusing {addr}: cannot run `ip route get` ({exc})") from exc
    if dev != bridge or gateway is not None:
        how = f"dev {dev}" if dev else "no route"
        if gateway:
            how += f" via gateway {gateway}"
        raise NotRoutedViaBridge(
            f"refusing to connect to {addr}: `ip route get {addr}` gives {how}, "
            f"not the sandbox bridge {bridge} (bridge missing or sandbox torn down?)"
        )

"""The route guard refuses node addresses that would not stay on the sandbox bridge."""

from __future__ import annotations

import shutil

import pytest

from tools.testbed import NotRoutedViaBridge, Sandbox, assert_routed_via_bridge
from tools.testbed.testing import assert_no_traces, require_host, sandbox, unavailable

pytestmark = pytest.mark.e2e

GUARD_NAME = "kbtbg"
GUARD_SUBNET = "10.213.7.0/24"


def test_guard_refuses_when_bridge_absent() -> None:
    if shutil.which("ip") is None:
        unavailable("`ip` (iproute2) missing")
    # No bridge of this name exists: the address would go out the default route.
    with pytest.raises(NotRoutedViaBridge, match="not the sandbox bridge kbtbabsent-br"):
        assert_routed_via_bridge("10.213.7.11", "kbtbabsent-br")
    with pytest.raises(NotRoutedViaBridge):
        assert_routed_via_bridge("127.0.0.1", "kbtbabsent-br")
    with pytest.raises(NotRoutedViaBridge, match="not an IP address"):
        assert_routed_via_bridge("localhost", "kbtbabsent-br")


@pytest.mark.cluster
def test_guard_passes_on_bridge_then_refuses_once_it_is_gone() -> None:
    require_host()
    with sandbox(GUARD_NAME, GUARD_SUBNET, size=2) as sb:
        node = sb.node(2)
        assert_routed_via_bridge(node.address, sb.bridge)
        assert node.ssh("hostname").stdout.strip() == "node2"
        # Nodes have no default route, so they cannot send anything off the subnet.
        assert node.exec(["ip", "route", "show", "default"]).stdout.strip() == ""
        with open("/proc/sys/net/ipv4/ip_forward") as fh:
            assert fh.read().strip() == "0"
        # Private directories really are private to the node.
        node.ssh("touch /etc/kubernetes/only-node2")
        assert node.host_path("/etc/kubernetes/only-node2").exists()
        assert not sb.node(1).host_path("/etc/kubernetes/only-node2").exists()
        assert sb.node(1).ssh("ls /etc/kubernetes").stdout.strip() == ""

        # Take the bridge away (a half-done teardown): every connection is refused.
        sb_ip = ["ip", "link", "del", sb.bridge]
        import subprocess

        subprocess.run(sb_ip, check=True)
        with pytest.raises(NotRoutedViaBridge, match=sb.bridge):
            assert_routed_via_bridge(node.address, sb.bridge)
        with pytest.raises(NotRoutedViaBridge):
            node.ssh("true")


@pytest.mark.cluster
def test_leftover_sandbox_is_cleaned_not_reused(capsys: pytest.CaptureFixture[str]) -> None:
    require_host()
    crashed = Sandbox(name=GUARD_NAME, subnet=GUARD_SUBNET, size=1).up()
    crashed.node(1).ssh("touch /etc/kubernetes/from-crashed-run")
    # A new run finds the leftovers (as after a crash), removes them and starts fresh.
    fresh = Sandbox(name=GUARD_NAME, subnet=GUARD_SUBNET, size=1)
    try:
        fresh.up()
        assert "leftover sandbox 'kbtbg' from a crashed run" in capsys.readouterr().out
        assert fresh.node(1).ssh("ls /etc/kubernetes").stdout.strip() == ""
    finally:
        fresh.down()
    assert_no_traces(fresh)


def test_test_environment_guard_allows_loopback_and_refuses_the_outside():
    """assert_test_route is what KUBEBOARD_CONNECTION_GUARD names in the test environment."""
    from tools.testbed.guard import assert_test_route

    assert_test_route("127.0.0.1")
    assert_test_route("::1")
    for outside in ("192.0.2.10", "8.8.8.8", "10.213.250.9", "example.com"):
        with pytest.raises(NotRoutedViaBridge):
            assert_test_route(outside)

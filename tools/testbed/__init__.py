"""Kubeboard's test bed: node sandboxes, the route guard and a static-pod runner.

Typical use::

    from tools.testbed import Sandbox
    sb = Sandbox(name="kbtb", subnet="10.213.0.0/24", size=2).up()
    try:
        sb.node(1).ssh("hostname")
    finally:
        sb.down()
"""

from tools.testbed.binaries import BinariesMissing, bin_dir, find_binaries
from tools.testbed.guard import NotRoutedViaBridge, assert_routed_via_bridge
from tools.testbed.sandbox import Node, Sandbox, SandboxError

__all__ = [
    "BinariesMissing",
    "Node",
    "NotRoutedViaBridge",
    "Sandbox",
    "SandboxError",
    "assert_routed_via_bridge",
    "bin_dir",
    "find_binaries",
]

"""pytest helpers for test-bed tests (no Django, no database).

Prerequisites missing (binaries, root, sshd...) make a test *skip* with the
reason, unless KUBEBOARD_REQUIRE_TESTBED=1 (CI), where they make it *fail*.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tools.testbed.binaries import BinariesMissing, find_binaries
from tools.testbed.sandbox import STATE_ROOT, Sandbox, _mountpoints, check_host_tools


def testbed_required() -> bool:
    return os.environ.get("KUBEBOARD_REQUIRE_TESTBED", "") not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (KUBEBOARD_REQUIRE_TESTBED=1) with ``reason``."""
    if testbed_required():
        pytest.fail(f"test bed required (KUBEBOARD_REQUIRE_TESTBED=1) but unavailable: {reason}")
    hint = "" if "setup-testbed.sh" in reason else " (run `bash tools/setup-testbed.sh` as root)"
    pytest.skip(f"test bed unavailable: {reason}{hint}")


def require_host() -> None:
    missing = check_host_tools()
    if missing:
        unavailable("missing " + ", ".join(missing))


# The Debian packages behind a highly available control-plane endpoint (issue 21), installed on
# the host by setup-testbed.sh (never started there): nodes with a private root see them in
# their lower layer, as pre-installed packages.
HA_PACKAGES = {"keepalived": "/usr/sbin/keepalived", "haproxy": "/usr/sbin/haproxy"}


def require_ha_packages() -> None:
    missing = [name for name, path in HA_PACKAGES.items() if not os.access(path, os.X_OK)]
    if missing:
        unavailable(f"Debian packages {' '.join(missing)} not installed (run bash tools/setup-testbed.sh)")


def require_binaries(version: str | None = None) -> Path:
    require_host()
    try:
        return find_binaries(version)
    except BinariesMissing as exc:
        unavailable(str(exc))
    raise AssertionError("unreachable")


def assert_no_traces(sb: Sandbox) -> None:
    """Fail if anything of ``sb`` is still running, mounted or on disk."""
    left = sb.leftovers()
    assert not left, f"sandbox {sb.name} left traces: {left}"
    state = str(sb.state_dir)
    # Its own directory only: kbtbn's check must not see kbtbnw's mounts (a sandbox of another
    # pass running at the same time, whose name starts with this one's).
    mounts = [m for m in _mountpoints() if m == state or m.startswith(state + "/")]
    assert not mounts, f"mounts left: {mounts}"
    stray = []
    own = re.compile(re.escape(state.encode()) + rb"(?=[/\s\0]|$)")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if own.search(cmdline):
                stray.append(f"{entry}: {cmdline[:200]!r}")
    assert not stray, f"processes still referencing {state}: {stray}"
    assert not (STATE_ROOT / sb.name).exists()


@contextmanager
def sandbox(
    name: str,
    subnet: str,
    size: int = 1,
    bin_dir: Path | None = None,
    bare: bool = False,
    private_root: bool = False,
) -> Iterator[Sandbox]:
    """A sandbox that is torn down (and checked) even when the test fails. ``bin_dir``: the
    release whose binaries the nodes' SSH sessions find first (default: the selected one).
    ``bare``: blank machines with private roots (issue 19). ``private_root``: provisioned
    machines with private roots, the systemctl double and the runner as init and kubelet."""
    kwargs: dict[str, object] = {"bare": bare, "private_root": private_root}
    if bin_dir is not None:
        kwargs["bin_dir"] = bin_dir
    sb = Sandbox(name=name, subnet=subnet, size=size, **kwargs)  # type: ignore[arg-type]
    try:
        yield sb.up()
    finally:
        sb.down()
    assert_no_traces(sb)

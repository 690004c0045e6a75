"""Bare test-bed machines (issue 19): blank, each with a private root, and preparing one never
changes the host the tests run on.

One 1-node bare sandbox (``kbtbb`` on 10.213.40.0/24) serves the module. The host's files,
package database and sysctls are snapshotted before and compared after each test that changes
the node.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.testbed.sandbox import BARE_ABSENT, Sandbox
from tools.testbed.testing import require_host, sandbox

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

NAME = "kbtbb"
SUBNET = "10.213.40.0/24"

# What preparing a machine writes (and what a package manager keeps), as the host has it.
WATCHED_TREES = (
    "/etc/apt",
    "/etc/sysctl.d",
    "/etc/modules-load.d",
    "/etc/systemd/system",
    "/etc/containerd",
    "/etc/default",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/opt",
    "/var/lib/dpkg",
    "/var/lib/containerd",
    "/usr/lib/systemd/system",
)
WATCHED_FILES = ("/etc/fstab", "/etc/hosts", "/etc/hostname", "/usr/bin/systemctl", "/usr/bin/kubectl", "/root/.bashrc")
WATCHED_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "kernel/pid_max",
    "fs/protected_regular",
    "vm/swappiness",
)


def _entry(path: str) -> tuple[object, ...]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ("absent",)
    if os.path.islink(path):
        return ("link", os.readlink(path))
    if not os.path.isfile(path):
        return ("dir" if os.path.isdir(path) else "other", st.st_mode)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if st.st_size < 8 << 20 else st.st_mtime_ns
    return ("file", st.st_mode, st.st_size, digest)


def host_snapshot() -> dict[str, object]:
    """The host state a machine's preparation could change, read without changing it."""
    snap: dict[str, object] = {}
    for tree in WATCHED_TREES:
        snap[tree] = _entry(tree)
        for root, dirs, files in os.walk(tree):
            for name in dirs + files:
                path = os.path.join(root, name)
                snap[path] = _entry(path)
    for path in WATCHED_FILES:
        snap[path] = _entry(path)
    for key in WATCHED_SYSCTLS:
        snap[f"sysctl {key}"] = _entry(f"/proc/sys/{key}") and Path(f"/proc/sys/{key}").read_text()
    snap["/proc/swaps"] = Path("/proc/swaps").read_text()
    snap["dpkg -l"] = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n"], capture_output=True, text=True, check=True
    ).stdout
    return snap


def assert_host_unchanged(before: dict[str, object]) -> None:
    after = host_snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, "the host changed: " + "; ".join(
        f"{k}: {before.get(k, 'absent')!r} -> {after.get(k, 'absent')!r}"[:300] for k in changed[:20]
    )


@pytest.fixture(scope="module")
def bare() -> Iterator[Sandbox]:
    require_host()
    with sandbox(NAME, SUBNET, size=1, bare=True) as sb:
        yield sb


def make_deb(tmp: Path, name: str, version: str) -> Path:
    """A tiny real Debian package (one file under /usr/share), built with dpkg-deb."""
    root = tmp / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Kubeboard test bed <none@invalid>\n"
        "Description: probe package of the bare-machine test\n"
    )
    (root / "usr" / "share" / name).mkdir(parents=True)
    (root / "usr" / "share" / name / "README").write_text("installed on a bare test-bed node only\n")
    deb = tmp / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)], check=True, capture_output=True)
    return deb


def test_bare_node_is_blank_and_changing_its_root_leaves_the_host_unchanged(bare: Sandbox, tmp_path: Path) -> None:
    node = bare.node(1)
    before = host_snapshot()

    # Blank: none of the binaries on PATH, and the kernel settings a fresh network namespace has.
    found = node.ssh("for b in " + " ".join(BARE_ABSENT) + '; do command -v "$b"; done; true').stdout
    assert found.strip() == "", f"a bare node has these on its PATH: {found}"
    assert node.ssh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    assert node.ssh("cat /proc/swaps").stdout.strip().splitlines()[1:] == []
    assert node.ssh("dpkg-query -W kubectl kubeadm kubelet", check=False).returncode != 0
    mounts = node.ssh("findmnt -n -o FSTYPE,OPTIONS /").stdout
    assert mounts.startswith("overlay") and f"upperdir={node.rootfs}/upper" in mounts

    # Prepare-like changes inside the node, over SSH as Kubeboard would make them.
    deb = make_deb(tmp_path, "kubeboard-probe", "1.0")
    script = f"""set -e
printf '#!/bin/sh\\necho probe\\n' > /usr/local/bin/kubeboard-probe && chmod 755 /usr/local/bin/kubeboard-probe
mkdir -p /opt/kubeboard-probe && echo x > /opt/kubeboard-probe/file
mkdir -p /etc/modules-load.d && printf 'overlay\\nbr_netfilter\\n' > /etc/modules-load.d/k8s.conf
printf 'net.ipv4.ip_forward = 1\\nnet.bridge.bridge-nf-call-iptables = 1\\nnet.bridge.bridge-nf-call-ip6tables = 1\\n' > /etc/sysctl.d/99-kubernetes.conf
sysctl -p /etc/sysctl.d/99-kubernetes.conf
swapoff -a
sed -i '/ swap / s/^/#/' /etc/fstab
echo '# kubeboard probe' >> /etc/fstab
dpkg -i {deb}
systemctl mask swap.target
echo 'KUBELET_EXTRA_ARGS=' > /etc/default/kubelet
"""
    node.ssh(script)
    # A global (non-network) sysctl is the host kernel's: refused inside the node.
    refused = node.ssh("sysctl -w kernel.pid_max=65536", check=False)
    assert refused.returncode != 0

    # The node sees its changes...
    assert node.ssh("kubeboard-probe").stdout.strip() == "probe"
    assert node.ssh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert node.ssh("dpkg-query -W -f '${Status}' kubeboard-probe").stdout == "install ok installed"
    assert node.ssh("systemctl is-enabled swap.target", check=False).stdout.strip() == "masked"
    assert (node.root / "opt/kubeboard-probe/file").read_text() == "x\n"
    # ...which live in its overlay's upper layer only, and the host is exactly as before.
    assert (node.rootfs / "upper/usr/local/bin/kubeboard-probe").exists()
    assert_host_unchanged(before)
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"

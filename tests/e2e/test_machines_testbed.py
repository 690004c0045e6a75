"""Machines over SSH on the real test bed: a blank sandbox machine, checked the way a user would.

Kubeboard's own transport (asyncssh, guard-checked) logs in with the cluster key a person
added to the machine's authorized_keys, after accepting the host key whose fingerprint
`ssh-keygen -lf` prints on the machine.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from nodes import services
from nodes.connect import connect
from nodes.models import Node
from remote import ssh
from tests.factories import make_cluster
from tools.testbed.binaries import selected_version
from tools.testbed.testing import require_binaries, sandbox

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.django_db]

NAME = "kbtbm0"
SUBNET = "10.213.10.0/24"
UNUSED_ADDRESS = "10.213.10.99"  # on the sandbox bridge, no machine behind it


def test_blank_testbed_machine_is_checked_and_an_unused_address_is_unreachable():
    require_binaries()
    cluster = make_cluster("e2e", kubernetes_version=selected_version())
    with sandbox(NAME, SUBNET, size=1) as sb:
        machine = sb.node(1)
        node = Node.objects.create(cluster=cluster, name="cp1", address=machine.address, role=Node.Role.CONTROL_PLANE)
        # The person adds the cluster's public key to the machine (the sandbox's sshd reads this file).
        key = services.ensure_cluster_key(cluster)
        with open(sb.state_dir / "authorized_keys", "a") as handle:
            handle.write(key.public_key + "\n")

        with pytest.raises(ssh.HostKeyUnknown) as first:
            connect(node)
        on_machine = subprocess.run(
            ["ssh-keygen", "-lf", f"{machine.dir / 'ssh_host_ed25519_key'}.pub"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[1]
        assert first.value.fingerprint == on_machine
        services.accept_host_key(node, user=None, fingerprint=on_machine)

        report = services.run_check(node.pk)
        assert report["login"] and report["complete"], report
        kubeadm = report["binaries"]["kubeadm"]
        assert kubeadm["version"] == selected_version() and kubeadm["skew"] is None
        assert kubeadm["path"].endswith("/kubeadm")
        assert report["binaries"]["kubectl"]["version"] == selected_version()
        # The test bed's `kubelet` on PATH is kubemark's hollow kubelet; it reports the release.
        kubelet = report["binaries"]["kubelet"]
        assert kubelet["version"] == selected_version() and kubelet["skew"] is None
        assert report["problems"] == [] and report["warnings"] == []
        assert report["etc_kubernetes"] == {"exists": True, "files": [], "count": 0, "populated": False}
        assert report["ports"]["checked"] == [2379, 2380, 6443, 10250, 10257, 10259]
        assert report["ports"]["in_use"] == []
        assert report["os"]["pretty_name"] and report["architecture"] and report["kernel"]
        # The check wrote nothing on the machine.
        assert list(machine.host_path("/etc/kubernetes").iterdir()) == []
        assert not machine.host_path("/run/kubeboard").exists()
        node.refresh_from_db()
        assert node.status == Node.Status.REACHABLE

        ghost = Node.objects.create(cluster=cluster, name="ghost", address=UNUSED_ADDRESS)
        started = time.monotonic()
        with pytest.raises(ssh.Unreachable) as info:
            connect(ghost, timeout=3)
        elapsed = time.monotonic() - started
        assert UNUSED_ADDRESS in str(info.value) and elapsed < 3 + 1.5, (elapsed, str(info.value))

    # The sandbox is gone: its addresses are no longer routed via a test bridge, so the guard
    # refuses before anything is sent.
    with pytest.raises(ssh.GuardRefused):
        connect(node)

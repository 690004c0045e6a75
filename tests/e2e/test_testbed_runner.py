"""The static-pod runner starts, restarts and stops manifests' processes in a node."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from tools.testbed.sandbox import Node
from tools.testbed.testing import require_host, sandbox

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: fakesvc
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: fakesvc
    image: registry.example/fakesvc:v0.0.0
    command:
    - fakesvc
    - --generation={generation}
    env:
    - name: FAKE_ENV
      value: "from-manifest"
    volumeMounts:
    - mountPath: /run/fake-config
      name: cfg
  volumes:
  - hostPath:
      path: /etc/kubernetes/fake
      type: DirectoryOrCreate
    name: cfg
"""

# Writes what it sees into the node's private /var/lib/etcd so the test can check it.
FAKESVC = """#!/bin/sh
echo "$@ env=$FAKE_ENV host=$(hostname) cfg=$(cat /run/fake-config/value)" > /var/lib/etcd/fakesvc.out
echo $$ > /var/lib/etcd/fakesvc.pid
exec sleep 1000
"""


def _wait(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def _running(node: Node, pid: str) -> bool:
    """Whether ``pid`` is alive in the node (exec keeps the script's pid for sleep)."""
    return node.exec(["sh", "-c", f"kill -0 {pid} 2>/dev/null"], check=False).returncode == 0


def test_runner_starts_restarts_and_stops_static_pods() -> None:
    require_host()
    with sandbox("kbtbr", "10.213.4.0/24", size=1) as sb:
        node = sb.node(1)
        # Not under /tmp: nodes have a private /tmp.
        bins = sb.state_dir / "fakebin"
        bins.mkdir()
        (bins / "fakesvc").write_text(FAKESVC)
        (bins / "fakesvc").chmod(0o755)
        node.host_path("/etc/kubernetes/fake").mkdir(parents=True)
        node.host_path("/etc/kubernetes/fake/value").write_text("v1")
        manifests = node.host_path("/etc/kubernetes/manifests")
        manifests.mkdir()
        (manifests / "fakesvc.yaml").write_text(MANIFEST.format(generation=1))
        node.start_runner(bins)

        out = node.host_path("/var/lib/etcd/fakesvc.out")
        _wait(out.exists, "fakesvc to start")
        # argv from the manifest, env, the node's hostname, and the hostPath mapped to mountPath.
        assert out.read_text().strip() == "--generation=1 env=from-manifest host=node1 cfg=v1"
        pidfile = node.host_path("/var/lib/etcd/fakesvc.pid")
        _wait(pidfile.exists, "pid file")
        first = pidfile.read_text().strip()
        assert _running(node, first)

        (manifests / "fakesvc.yaml").write_text(MANIFEST.format(generation=2))
        _wait(lambda: out.exists() and "--generation=2" in out.read_text(), "restart on change")
        _wait(lambda: pidfile.read_text().strip() != first, "a new process")
        second = pidfile.read_text().strip()
        assert not _running(node, first), "old process still running after the change"
        assert _running(node, second)

        (manifests / "fakesvc.yaml").unlink()
        _wait(lambda: not _running(node, second), "stop on removal")
        log = (node.dir / "logs" / "runner.log").read_text()
        assert "manifest /etc/kubernetes/manifests/fakesvc.yaml changed" in log
        assert "removed: stopping fakesvc" in log

        # A runner killed hard leaves its pods; the next runner stops them first.
        (manifests / "fakesvc.yaml").write_text(MANIFEST.format(generation=3))
        _wait(lambda: "--generation=3" in out.read_text(), "start again")
        _wait(lambda: pidfile.read_text().strip() != second, "pid of generation 3")
        orphan = pidfile.read_text().strip()
        os.kill(int((node.dir / "runner.pid").read_text()), signal.SIGKILL)
        time.sleep(0.5)
        assert _running(node, orphan)
        node.start_runner(bins)
        _wait(lambda: not _running(node, orphan), "orphan stopped by the new runner")
        _wait(lambda: pidfile.read_text().strip() != orphan, "pod restarted by the new runner")
        assert "left by an earlier runner" in (node.dir / "logs" / "runner.log").read_text()

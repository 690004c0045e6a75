"""kubeadm upgrade from the older pinned release to the newer one, for real.

Optional: needs the older release built (KUBEBOARD_TESTBED_OLDER=1 bash
tools/setup-testbed.sh). Skipped when it is absent, unless both
KUBEBOARD_REQUIRE_TESTBED=1 and KUBEBOARD_TESTBED_OLDER=1 are set.
"""

from __future__ import annotations

import json
import os

import pytest

from tools.testbed.binaries import DEFAULT_VERSION, OLDER_VERSION, BinariesMissing, find_binaries
from tools.testbed.cluster import ControlPlane, kubeadm_join, new_bootstrap_token
from tools.testbed.testing import require_binaries, sandbox, unavailable

pytestmark = pytest.mark.e2e


def test_kubeadm_upgrade_apply_and_node() -> None:
    new = require_binaries(DEFAULT_VERSION)
    try:
        old = find_binaries(OLDER_VERSION)
    except BinariesMissing as exc:
        if os.environ.get("KUBEBOARD_TESTBED_OLDER") == "1":
            unavailable(str(exc))
        pytest.skip(f"older release not built (optional): {exc}")
    for bins in (old, new):
        if not os.access(bins / "kubemark", os.X_OK):
            unavailable(f"{bins}/kubemark missing")

    with sandbox("kbtbu", "10.213.5.0/24", size=2) as sb:
        cp1, worker = sb.node(1), sb.node(2)
        for node in sb.nodes:
            node.start_runner(old, kubelet=True)
        cp = ControlPlane(node=cp1, bin_dir=old, version=OLDER_VERSION, token=new_bootstrap_token())
        cp.kubeadm_init()
        kubeadm_join(worker, old, cp.join_command())
        server = json.loads(cp.kubectl("version", "-o", "json").stdout)["serverVersion"]
        assert server["gitVersion"] == OLDER_VERSION

        # preflight is skipped: it needs a CRI for image pulls and its health-check
        # Job never completes under the fake runtime.
        out = cp1.ssh(
            f"{new}/kubeadm upgrade apply {DEFAULT_VERSION} --yes --skip-phases=preflight 2>&1", timeout=900
        ).stdout
        assert f'[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{DEFAULT_VERSION}"' in out
        server = json.loads(cp.kubectl("version", "-o", "json").stdout)["serverVersion"]
        assert server["gitVersion"] == DEFAULT_VERSION
        # The runner now runs the new release's binaries, etcd included (by image tag).
        ps = cp1.exec(["ps", "-eo", "args"]).stdout
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
            assert f"{new}/{component} " in ps, f"{component} not upgraded:\n{ps}"

        out = worker.ssh(f"{new}/kubeadm upgrade node --skip-phases=preflight 2>&1", timeout=600).stdout
        assert "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!" in out

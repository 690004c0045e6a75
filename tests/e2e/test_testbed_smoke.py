"""Smoke test of the test bed: a real kubeadm control plane in a sandbox node.

Real kubeadm phases write certs, kubeconfigs and static-pod manifests; the
static-pod runner starts etcd, kube-apiserver, kube-controller-manager and
kube-scheduler from them; kubeadm then uploads config and certs and creates a
bootstrap token, which must authenticate. Teardown must leave nothing behind.

The control plane is the run's shared token test bed (tests/conftest.py), which boots exactly
this way (tests/support/kubeclusters.py, with Kubeboard's CAs seeded first): the smoke test costs
no boot of its own (CI time). It runs first among the bed's users, on the fresh control plane; the
sandbox is checked for leftovers when the bed closes after its last user.
"""

from __future__ import annotations

import json

import pytest

from tools.testbed.binaries import selected_version
from tools.testbed.testing import require_binaries

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]


def test_kubeadm_control_plane_in_sandbox_node(token_testbeds) -> None:
    bins = require_binaries()
    bed = token_testbeds.get()
    cp, node, token = bed.cp, bed.cp.node, bed.cp.token
    # kubeadm reports the release it was built as; it checks the control plane against it.
    version = node.ssh(f"{bins}/kubeadm version -o short").stdout.strip()
    assert version == selected_version() == cp.version

    # kubeadm init phase certs, kubeconfig, etcd and control-plane wrote these.
    manifests = sorted(p.name for p in node.host_path("/etc/kubernetes/manifests").iterdir())
    assert manifests == ["etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    assert node.host_path("/etc/kubernetes/pki/ca.crt").exists()
    assert node.host_path("/etc/kubernetes/admin.conf").exists()

    # The runner started them (the boot waited for /readyz, up to 240 s).
    assert cp.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    # All four components run as processes inside the node.
    ps = node.exec(["ps", "-eo", "args"]).stdout
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert f"/bin/{component} " in ps, f"{component} not running in the node:\n{ps}"

    outputs = bed.init_outputs
    assert 'ConfigMap "kubeadm-config"' in outputs["upload-config all"]
    assert "Using certificate key:" in outputs["upload-certs"]
    assert f"Using token: {token}" in outputs["bootstrap-token"]
    cm = json.loads(cp.kubectl("-n", "kube-system", "get", "configmap", "kubeadm-config", "-o", "json").stdout)
    assert f"kubernetesVersion: {version}" in cm["data"]["ClusterConfiguration"]
    cp.kubectl("-n", "kube-system", "get", "secret", "kubeadm-certs")
    cp.kubectl("-n", "kube-public", "get", "configmap", "cluster-info")

    # The bootstrap token authenticates as its bootstrap user...
    whoami = cp.whoami_with_token(token)
    assert whoami.returncode == 0, f"bootstrap token refused: {whoami.stderr}"
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == f"system:bootstrap:{token.split('.')[0]}"
    assert "system:bootstrappers:kubeadm:default-node-token" in user["groups"]
    # ...and a wrong secret for the same id is refused (the check is real).
    wrong = cp.whoami_with_token(token.split(".")[0] + "." + "0" * 16)
    assert wrong.returncode != 0 and "Unauthorized" in wrong.stderr

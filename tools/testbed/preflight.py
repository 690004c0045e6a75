"""The test bed's preflight ignore lists: the checks kubeadm cannot pass on the test bed.

These are the narrowest lists that let ``kubeadm init|join phase preflight`` pass on the test bed
(Linux namespaces, kubemark's hollow kubelet, no container runtime), found by running the real
kubeadm v1.37.2 there and adding one check at a time (tests/e2e/test_kubeadm_phases.py proves
them). On a real machine with a container runtime none of them should be needed. Kubeboard
never reads them: the tests and benches put them into a cluster's, a machine's or the upgrade's
ignore list, as an operator would (kubeadm.preflight holds the rules those lists follow).
"""

from __future__ import annotations

from kubeadm.errors import ConfigError

# Why each entry is on the test bed's list (checks that fail there, on kubeadm v1.37.2):
# - CRI, ContainerRuntimeVersion: no container runtime answers on the CRI socket; the
#   hollow kubelet uses an in-process fake runtime.
# - ImagePull: pulling the control-plane images needs that runtime (control-plane nodes only:
#   a worker's join preflight pulls nothing).
# - SystemVerification: kubeadm refuses cgroups v1 for kubelet >= 1.35 unless FailCgroupV1 is
#   off ("cgroups v1 support is deprecated ..."); the machine running the test bed has cgroups v1.
# - FileContent--proc-sys-net-ipv4-ip_forward: sandbox nodes must never forward packets
#   (tools/README.md, Safety), so net.ipv4.ip_forward stays 0 by design.
# KubeletVersion is NOT needed: the test bed puts kubemark (the hollow kubelet, which prints
# "Kubernetes v1.37.2" for --version) on the nodes' PATH as `kubelet`. Without that it would be a
# sixth entry ("cannot execute 'kubelet --version'"), and SystemVerification fails for that
# reason first. Service-kubelet is only a warning (no systemd), never an error.
TESTBED_INIT = (
    "CRI",
    "ContainerRuntimeVersion",
    "ImagePull",
    "SystemVerification",
    "FileContent--proc-sys-net-ipv4-ip_forward",
)
TESTBED_JOIN_CONTROL_PLANE = TESTBED_INIT
TESTBED_JOIN_WORKER = (
    "CRI",
    "ContainerRuntimeVersion",
    "SystemVerification",
    "FileContent--proc-sys-net-ipv4-ip_forward",
)
# `kubeadm upgrade plan|apply` preflight: no CRI check there, but the cluster health check
# starts a Job that never completes under the fake runtime (CreateJob).
# Bare machines prepared with containerd, the imported images and ip_forward=1 in their network
# namespace (tests/e2e/test_testbed_bare.py: init and a worker join pass with only this): the
# only check left is the cgroups v1 refusal of kubelet >= 1.35, a property of this host's kernel.
TESTBED_PREPARED = ("SystemVerification",)
TESTBED_UPGRADE = ("ContainerRuntimeVersion", "ImagePull", "SystemVerification", "CreateJob")
TESTBED_UPGRADE_PLAN = ("CreateJob",)
# `kubeadm upgrade apply|node` on bare machines Kubeboard prepared (tests/e2e/test_day2_upgrade.py):
# containerd answers and the target's images are imported, so ContainerRuntimeVersion and
# ImagePull run and pass; left are this host's cgroups v1 refusal and the health check's Job.
TESTBED_PREPARED_UPGRADE = ("SystemVerification", "CreateJob")
# `kubeadm upgrade node` preflight on a worker (no health-check Job, no image pre-pull there).
TESTBED_UPGRADE_NODE_WORKER = ("ContainerRuntimeVersion", "SystemVerification")


def testbed_ignore_preflight_errors(role: str) -> tuple[str, ...]:
    """The test bed's narrowest list for ``role``: "init", "control-plane" (join), "worker" (join),
    "upgrade" (upgrade apply), "upgrade-plan" or "upgrade-node-worker"."""
    lists = {
        "init": TESTBED_INIT,
        "control-plane": TESTBED_JOIN_CONTROL_PLANE,
        "worker": TESTBED_JOIN_WORKER,
        "upgrade": TESTBED_UPGRADE,
        "upgrade-plan": TESTBED_UPGRADE_PLAN,
        "upgrade-node-worker": TESTBED_UPGRADE_NODE_WORKER,
    }
    if role not in lists:
        raise ConfigError("role", "one of " + ", ".join(lists), role)
    return lists[role]

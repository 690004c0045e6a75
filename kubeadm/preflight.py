"""kubeadm's preflight checks: names, the ignore-list rules, and the test bed's ignore lists.

Check names are what kubeadm prints in ``[ERROR <Name>]`` / ``[WARNING <Name>]`` and accepts in
``--ignore-preflight-errors`` / ``nodeRegistration.ignorePreflightErrors``
(cmd/kubeadm/app/preflight/checks.go; ``FileContent--proc-sys-net-ipv4-ip_forward`` is the
FileContentCheck name with "/" replaced by "-"). kubeadm compares them case-insensitively and
refuses "all" mixed with other names (validation.ValidateIgnorePreflightErrors).

The TESTBED_* lists are the narrowest lists that let ``kubeadm init|join phase preflight`` pass
on the test bed (tools/testbed: Linux namespaces, kubemark's hollow kubelet, no container
runtime), found by running the real kubeadm v1.37.2 there and adding one check at a time
(tests/e2e/test_kubeadm_phases.py proves them). On a real machine with a container runtime none
of them should be needed.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubeadm.errors import ConfigError

ALL = "all"

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
TESTBED_UPGRADE = ("ContainerRuntimeVersion", "ImagePull", "SystemVerification", "CreateJob")
TESTBED_UPGRADE_PLAN = ("CreateJob",)
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


def normalize_ignore_list(names: Iterable[str], *, field: str = "ignorePreflightErrors") -> list[str]:
    """Validate and de-duplicate (case-insensitively, first spelling kept) an ignore list.

    "all" alone stays ["all"]; "all" mixed with names is refused as kubeadm refuses it
    ("don't specify individual checks if 'all' is used"). Names must be check-name shaped
    (no spaces or commas): a comma inside one entry would silently become two on a command line.
    """
    result: list[str] = []
    seen: set[str] = set()
    for raw in names:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(field, "preflight check names such as Port-6443 or Swap", raw)
        name = raw.strip()
        if any(c.isspace() or c == "," for c in name):
            raise ConfigError(field, "one check name per entry (no spaces or commas)", name)
        if name.lower() not in seen:
            seen.add(name.lower())
            result.append(name)
    if ALL in seen and len(result) > 1:
        raise ConfigError(
            field,
            "either 'all' alone or individual check names",
            result,
            hint="kubeadm refuses individual checks together with 'all'",
        )
    return result


def ignore_flag(names: Iterable[str]) -> list[str]:
    """``["--ignore-preflight-errors=A,B"]``, or [] for an empty list."""
    normalized = normalize_ignore_list(names)
    return ["--ignore-preflight-errors=" + ",".join(normalized)] if normalized else []

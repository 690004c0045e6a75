"""Kubernetes versions Kubeboard can drive, and version parsing.

Why this window: kubeadm v1.N deploys control planes of v1.(N-1) and v1.N
and upgrades one minor at a time (``MaximumAllowedMinorVersionUpgradeSkew = 1``,
phases/upgrade/policy.go); upstream maintains the three newest minors. The
test bed builds v1.37.2 and v1.36.3 (tools/build-k8s.sh), so the window is
the maintained minors at v1.37: 1.35, 1.36, 1.37. Every kubeadm in it reads
and writes kubeadm.k8s.io/v1beta4 (the v1 API exists in the source tree but
its release is still "TODO" in v1/doc.go). Widen the tuple once a new minor's
`kubeadm config print init-defaults` and `kubeadm init --dry-run` output has
been compared with what this package renders.
"""

from __future__ import annotations

import re

from kubeadm.errors import UnsupportedVersionError

SUPPORTED_VERSIONS: tuple[str, ...] = ("1.35", "1.36", "1.37")

# The newest patch release of each supported minor (k8s.io/kubernetes on the Go module proxy);
# forms offer exactly these, newest first, and read "1.37" as the newest patch of 1.37.
NEWEST_PATCHES: dict[str, str] = {"1.35": "v1.35.4", "1.36": "v1.36.3", "1.37": "v1.37.2"}

# The release the test bed builds; one constant so it is easily changed.
DEFAULT_KUBERNETES_VERSION = "v1.37.2"

# ECDSA-P384 became a valid encryptionAlgorithm in v1.34 (kubernetes#131677).
ECDSA_P384_MINIMUM_MINOR = 34

# Same shape as the semver kubeadm accepts for kubernetesVersion: optional
# "v", MAJOR.MINOR.PATCH, optional pre-release / build metadata.
_VERSION_RE = re.compile(
    r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$"
)


def parse_version(s: str, *, field: str = "kubernetesVersion", check_supported: bool = True) -> tuple[int, int, int]:
    """Parse "1.34.2" or "v1.34.2" into (1, 34, 2).

    Raises UnsupportedVersionError when the text is not a version, or (with
    check_supported) when its minor is not in SUPPORTED_VERSIONS.
    """
    if not isinstance(s, str):
        raise UnsupportedVersionError(field, f"a version string like {DEFAULT_KUBERNETES_VERSION}", s)
    match = _VERSION_RE.match(s.strip())
    if match is None:
        raise UnsupportedVersionError(
            field, f"a version like {DEFAULT_KUBERNETES_VERSION} (MAJOR.MINOR.PATCH, optional leading v)", s
        )
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    if check_supported and f"{major}.{minor}" not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(
            field,
            "a Kubernetes minor in " + ", ".join(SUPPORTED_VERSIONS),
            s,
            hint="this Kubeboard release drives only those minors",
        )
    return major, minor, patch


def offered_versions() -> list[str]:
    """What a form offers: the newest patch of each supported minor, newest first."""
    return [NEWEST_PATCHES[minor] for minor in sorted(SUPPORTED_VERSIONS, key=_minor_number, reverse=True)]


def _minor_number(minor: str) -> int:
    return int(minor.split(".")[1])


_MINOR_RE = re.compile(r"^(?:stable-)?v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


def resolve_version(text: str, *, field: str = "kubernetesVersion") -> str:
    """A version a person typed, as the cluster stores it: "v1.37.2".

    "1.37", "v1.37" and kubeadm's label "stable-1.37" mean the newest patch of that minor;
    "1.36.1" gains its "v". Anything outside SUPPORTED_VERSIONS raises UnsupportedVersionError
    whose message lists only versions this release can deploy.
    """
    value = text.strip() if isinstance(text, str) else text
    offered = ", ".join(offered_versions())
    if isinstance(value, str):
        minor_only = _MINOR_RE.match(value)
        if minor_only is not None:
            minor = f"{minor_only.group(1)}.{minor_only.group(2)}"
            if minor not in SUPPORTED_VERSIONS:
                raise UnsupportedVersionError(
                    field, f"one of {offered}", text, hint=f"Kubernetes {minor} is not supported by this Kubeboard"
                )
            return NEWEST_PATCHES[minor]
    try:
        major, minor, _ = parse_version(value, field=field, check_supported=False)
    except UnsupportedVersionError:
        raise UnsupportedVersionError(
            field, f"one of {offered}, or a minor such as {SUPPORTED_VERSIONS[-1]} for its newest patch", text
        ) from None
    if f"{major}.{minor}" not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(
            field, f"one of {offered}", text, hint=f"Kubernetes {major}.{minor} is not supported by this Kubeboard"
        )
    return with_v(value)


def minor_of(s: str) -> str:
    """Return "1.34" for "v1.34.2"; raises UnsupportedVersionError on bad input."""
    major, minor, _ = parse_version(s, check_supported=False)
    return f"{major}.{minor}"


def with_v(s: str) -> str:
    """Return the version with a leading "v", as image tags use it."""
    return s if s.startswith("v") else "v" + s


# --- version skew (kubeadm v1.37.2: cmd/kubeadm/app/constants/constants.go and
# preflight/checks.go KubernetesVersionCheck / KubeletVersionCheck) ---------------

# kubeadm v1.N deploys control planes of v1.N and v1.(N-1) (MinimumControlPlaneVersion =
# getSkewedKubernetesVersion(-1)); a newer control plane is only a preflight warning in
# kubeadm, but Kubeboard refuses it: nothing tests that kubeadm against a newer release.
KUBEADM_CONTROL_PLANE_SKEW = 1
# The kubelet may be up to three minors older than the control plane
# (MinimumKubeletVersion = getSkewedKubernetesVersion(-3)) and never newer.
KUBELET_SKEW = 3
# kubectl works with API servers one minor older or newer (version skew policy).
KUBECTL_SKEW = 1


def _major_minor(s: str, field: str) -> tuple[int, int]:
    major, minor, _ = parse_version(s, field=field, check_supported=False)
    return major, minor


def deployable(kubeadm_version: str, kubernetes_version: str) -> str | None:
    """None when kubeadm ``kubeadm_version`` can deploy a control plane of ``kubernetes_version``,
    else the reason in words a person can act on."""
    tool = _major_minor(kubeadm_version, "kubeadm version")
    target = _major_minor(kubernetes_version, "kubernetesVersion")
    if tool[0] != target[0]:
        return f"kubeadm {kubeadm_version} cannot deploy Kubernetes {kubernetes_version} (different major version)"
    if target[1] > tool[1]:
        return (
            f"kubeadm {kubeadm_version} is older than Kubernetes {kubernetes_version}: "
            f"install kubeadm {tool[0]}.{target[1]} on the machine"
        )
    if target[1] < tool[1] - KUBEADM_CONTROL_PLANE_SKEW:
        return (
            f"kubeadm {kubeadm_version} deploys only Kubernetes {tool[0]}.{tool[1] - KUBEADM_CONTROL_PLANE_SKEW} "
            f"and {tool[0]}.{tool[1]}; {kubernetes_version} needs kubeadm {tool[0]}.{target[1]} or "
            f"{tool[0]}.{target[1] + 1}"
        )
    return None


def kubelet_skew(kubelet_version: str, control_plane_version: str) -> str | None:
    """None when a kubelet of ``kubelet_version`` may run against ``control_plane_version``."""
    kubelet = _major_minor(kubelet_version, "kubelet version")
    plane = _major_minor(control_plane_version, "control plane version")
    if kubelet[0] != plane[0] or kubelet[1] > plane[1]:
        return (
            f"kubelet {kubelet_version} is newer than the control plane {control_plane_version}; "
            "a kubelet must never be newer than its API server"
        )
    if kubelet[1] < plane[1] - KUBELET_SKEW:
        return (
            f"kubelet {kubelet_version} is more than {KUBELET_SKEW} minor versions older than the control plane "
            f"{control_plane_version}; install kubelet {plane[0]}.{plane[1] - KUBELET_SKEW} or newer"
        )
    return None


def kubectl_skew(kubectl_version: str, control_plane_version: str) -> str | None:
    """None when ``kubectl_version`` is within one minor of ``control_plane_version``."""
    tool = _major_minor(kubectl_version, "kubectl version")
    plane = _major_minor(control_plane_version, "control plane version")
    if tool[0] != plane[0] or abs(tool[1] - plane[1]) > KUBECTL_SKEW:
        return (
            f"kubectl {kubectl_version} is more than {KUBECTL_SKEW} minor version away from the control plane "
            f"{control_plane_version}"
        )
    return None


# kubeadm upgrade apply moves the control plane at most one minor at a time
# (phases/upgrade/policy.go MaximumAllowedMinorVersionUpgradeSkew = 1) and refuses downgrades of
# more than a patch within a minor; Kubeboard refuses every downgrade.
UPGRADE_MINOR_SKEW = 1


def upgrade_path(current: str, target: str) -> str | None:
    """None when a control plane at ``current`` may be upgraded to ``target`` (the next minor or a
    newer patch of its own, within SUPPORTED_VERSIONS), else why not and what to do instead."""
    now = parse_version(current, field="current version", check_supported=False)
    want = parse_version(target, field="target version", check_supported=False)
    if f"{want[0]}.{want[1]}" not in SUPPORTED_VERSIONS:
        return f"Kubernetes {target} is outside the versions this Kubeboard drives ({', '.join(SUPPORTED_VERSIONS)})"
    if want[0] != now[0]:
        return f"cannot upgrade from {current} to {target}: different major version"
    if want == now:
        return f"the control plane already runs {current}; nothing to upgrade"
    if want < now:
        return f"{target} is older than {current}: downgrades are not supported (restore an etcd snapshot instead)"
    if want[1] > now[1] + UPGRADE_MINOR_SKEW:
        steps = ", then ".join(f"{now[0]}.{m}" for m in range(now[1] + 1, want[1] + 1))
        return f"{current} to {target} skips a minor version; kubeadm upgrades one minor at a time: upgrade to {steps}"
    return None

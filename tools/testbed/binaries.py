"""Where the binaries built by tools/build-k8s.sh live."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_VERSION = "v1.37.2"
OLDER_VERSION = "v1.36.3"
COMPONENTS = (
    "kubeadm",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "etcdctl",
)


class BinariesMissing(Exception):
    """The binary cache is incomplete; run tools/setup-testbed.sh."""


def cache_root() -> Path:
    return Path(os.environ.get("KUBEBOARD_K8S_CACHE", "/var/cache/kubeboard/k8s"))


def selected_version() -> str:
    """The release tests use: $KUBEBOARD_K8S_VERSION, else the newest pinned one."""
    return os.environ.get("KUBEBOARD_K8S_VERSION", DEFAULT_VERSION)


def bin_dir(version: str | None = None) -> Path:
    """The cache bin directory for ``version`` (default: selected_version())."""
    return cache_root() / (version or selected_version()) / "bin"


def find_binaries(version: str | None = None) -> Path:
    """Return the bin dir if the build completed, else raise BinariesMissing."""
    path = bin_dir(version)
    missing = [c for c in COMPONENTS if not os.access(path / c, os.X_OK)]
    if missing or not (path / ".complete").exists():
        raise BinariesMissing(
            f"Kubernetes binaries incomplete in {path} (missing: {', '.join(missing) or 'build stamp'}); "
            "run `bash tools/setup-testbed.sh` (cold build: see tools/README.md)"
        )
    return path

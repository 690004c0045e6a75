"""Helpers for the kubeadm integration tests: find a binary or skip (fail in CI)."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def require_binary(name: str) -> str:
    """Path of ``name``; skip when missing, fail when KUBEBOARD_REQUIRE_SERVICES=1."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed (Debian packages: tests/integration/kubeadm/DEBIAN_PACKAGES)"
    if os.environ.get("KUBEBOARD_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

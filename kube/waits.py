"""Waits on the API server: until it answers /readyz, until a Node is Ready. Each asks every two
seconds through ``core.waiting.wait_until``; a cancel raises ``core.waiting.WaitCancelled``."""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.formatting import duration_words
from core.waiting import WaitTimedOut, wait_until
from kube.api import readyz
from kube.client import APITarget, ClusterUnreachable, KubeAPIError
from kube.nodes import list_nodes
from kubeadm import node_conditions

API_READY_TIMEOUT = 180
NODE_READY_TIMEOUT = 180


def wait_api_ready(
    target: APITarget,
    *,
    timeout: float = API_READY_TIMEOUT,
    cancel: threading.Event | None = None,
    retry: tuple[type[KubeAPIError], ...] = (ClusterUnreachable,),
    log: Callable[[str], None] | None = None,
) -> str:
    """``/readyz``'s answer once the API server is ready. Errors of the ``retry`` types are
    waited out (each one passed to ``log``) until the deadline, then the last one is raised;
    any other API error at once."""
    last: list[KubeAPIError] = []

    def ask() -> str | None:
        try:
            return readyz(target)
        except retry as exc:
            last[:] = [exc]
            if log is not None:
                log(f"API server not ready yet: {exc}")
            return None

    try:
        return wait_until(ask, timeout=timeout, cancel=cancel)
    except WaitTimedOut:
        raise last[0] from None


class NodeNotReady(TimeoutError):
    """A Node that did not become Ready in time; ``fix`` is what its conditions say to do
    (kubeadm.node_conditions), "" when they say nothing more."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


def wait_node_ready(
    target: APITarget,
    name: str,
    *,
    timeout: float = NODE_READY_TIMEOUT,
    cancel: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Poll the API server until Node ``name`` is Ready; returns its row (``kube.nodes.node_row``).
    Raises NodeNotReady (a TimeoutError, with the last state seen and why in a few words, e.g.
    "registered, not Ready yet: no pod network", and the fix), ``WaitCancelled``, or the API
    errors other than an unreachable API server (waited out: a control plane may be restarting)."""
    last = "not registered"
    fix = ""

    def ask() -> dict | None:
        nonlocal last, fix
        try:
            rows = {row["name"]: row for row in list_nodes(target)}
        except ClusterUnreachable as exc:
            rows, last = {}, str(exc)
        row = rows.get(name)
        if row is not None and row["ready"]:
            return row
        if row is not None:
            found = [item for item in node_conditions.explain(row) if item.severity != "note"]
            last = f"registered, not Ready yet: {found[0].summary}" if found else "registered, not Ready yet"
            fix = found[0].fix if found else ""
        return None

    def waiting() -> None:
        if log is not None:
            log(f"Waiting for node {name} to be Ready in the API server ({last})…")

    try:
        return wait_until(ask, timeout=timeout, cancel=cancel, waiting=waiting)
    except WaitTimedOut:
        raise NodeNotReady(f"node {name} not Ready after {duration_words(timeout)} ({last})", fix) from None

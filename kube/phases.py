"""API work inside an operation's phase: the one place where an API error becomes the phase's
failure (``phase_errors``), and the waits and the drain with their outcomes as the phase's
(a cancel cancels the phase, a timeout or an API error fails it with what to do)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from core.phases import OperationCancelled, PhaseError
from core.waiting import WaitCancelled
from kube.client import APITarget, ClusterUnreachable, KubeAPIError
from kube.nodes import drain
from kube.waits import API_READY_TIMEOUT, wait_api_ready, wait_node_ready


class Phase(Protocol):
    """What these helpers use of ``operations.runner.PhaseContext``."""

    cluster: APITarget
    node: Any
    cancel_event: threading.Event
    log: Callable[..., None]


@contextmanager
def phase_errors(hint: str = "", *, context: str = "") -> Iterator[None]:
    """``with phase_errors():`` around API calls in a phase: an API error fails the phase with
    its message (after ``context``, e.g. "could not revoke token x") and its hint (``hint``
    when the error brings none)."""
    try:
        yield
    except KubeAPIError as exc:
        raise PhaseError(f"{context}: {exc}" if context else str(exc), hint=exc.hint or hint) from None


def phase_wait_api_ready(
    ctx: Phase,
    *,
    timeout: float = API_READY_TIMEOUT,
    retry: tuple[type[KubeAPIError], ...] = (ClusterUnreachable,),
    hint: str = "",
    log_retries: bool = True,
) -> str:
    """``kube.waits.wait_api_ready`` for the phase's cluster; each refusal waited out is logged
    at debug level unless ``log_retries`` is False."""
    try:
        with phase_errors(hint):
            return wait_api_ready(
                ctx.cluster,
                timeout=timeout,
                cancel=ctx.cancel_event,
                retry=retry,
                log=(lambda message: ctx.log(message, level="debug")) if log_retries else None,
            )
    except WaitCancelled:
        raise OperationCancelled("cancelled while waiting for the API server") from None


def phase_wait_node_ready(ctx: Phase, *, timeout: float | None = None) -> dict:
    """``kube.waits.wait_node_ready`` for the phase's node."""
    node = ctx.node
    extra = {} if timeout is None else {"timeout": timeout}
    try:
        with phase_errors():
            return wait_node_ready(ctx.cluster, node.name, cancel=ctx.cancel_event, log=ctx.log, **extra)
    except WaitCancelled:
        raise OperationCancelled("cancelled while waiting for the node") from None
    except TimeoutError as exc:
        # The Node's conditions name the fix when they say why (kubeadm.node_conditions).
        raise PhaseError(str(exc), hint=getattr(exc, "fix", "") or f"check the kubelet on {node.name}") from None


def phase_drain(ctx: Phase) -> None:
    """``kube.nodes.drain`` of the phase's node (upgrade, reset)."""
    try:
        with phase_errors():
            drain(ctx.cluster, ctx.node.name, log=ctx.log, cancel=ctx.cancel_event)
    except WaitCancelled:
        raise OperationCancelled("cancelled while draining") from None
    except TimeoutError as exc:
        raise PhaseError(
            str(exc), hint="evict or delete those pods by hand (or relax the budget), then resume"
        ) from None

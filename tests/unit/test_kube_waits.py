"""The one wait loop (core.waiting), the API waits (kube.waits) and the one place an API error
becomes a phase's failure (kube.phases), without a network: the API calls are doubles."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

import kube
from core.phases import OperationCancelled, PhaseError
from core.waiting import WaitCancelled, WaitTimedOut, wait_until
from kube import phases, waits


def test_wait_until_returns_the_first_answer_and_says_once_what_it_waits_for():
    answers = iter([None, None, "ready"])
    said = []
    assert wait_until(lambda: next(answers), timeout=5, interval=0.01, waiting=lambda: said.append(1)) == "ready"
    assert said == [1]


def test_wait_until_asks_at_least_once_then_times_out_or_is_cancelled():
    asked = []
    with pytest.raises(WaitTimedOut):
        wait_until(lambda: asked.append(1), timeout=0, interval=0.01)
    assert asked == [1]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(WaitCancelled):
        wait_until(lambda: None, timeout=60, cancel=cancel)


def test_phase_errors_keep_the_message_and_hint_and_add_the_context():
    with pytest.raises(PhaseError) as info:
        with kube.phase_errors("retry the operation"):
            raise kube.ClusterForbidden("get Node x: forbidden", hint="grant the rights")
    assert info.value.message == "get Node x: forbidden — grant the rights" and info.value.hint == "grant the rights"
    with pytest.raises(PhaseError) as info:
        with kube.phase_errors("retry the operation", context="could not revoke token abcdef"):
            raise kube.ClusterAPIError("delete Secret: 409 Conflict", status=409)
    assert info.value.message == "could not revoke token abcdef: delete Secret: 409 Conflict"
    assert info.value.hint == "retry the operation"


def test_api_ready_waits_out_an_unreachable_server_but_not_a_refusal(monkeypatch):
    unreachable = kube.ClusterUnreachable("GET /readyz: cannot connect", hint="retry in a moment")
    monkeypatch.setattr(waits, "readyz", lambda target: (_ for _ in ()).throw(unreachable))
    seen = []
    with pytest.raises(kube.ClusterUnreachable):
        waits.wait_api_ready(SimpleNamespace(name="c"), timeout=0, log=seen.append)
    assert seen == [f"API server not ready yet: {unreachable}"]
    forbidden = kube.ClusterForbidden("GET /readyz: forbidden")
    monkeypatch.setattr(waits, "readyz", lambda target: (_ for _ in ()).throw(forbidden))
    with pytest.raises(kube.ClusterForbidden):
        waits.wait_api_ready(SimpleNamespace(name="c"), timeout=60)  # at once, not after a minute
    monkeypatch.setattr(waits, "readyz", lambda target: "ok")
    assert waits.wait_api_ready(SimpleNamespace(name="c"), timeout=0) == "ok"


def _node(ready: str | None):
    conditions = [] if ready is None else [SimpleNamespace(type="Ready", status=ready)]
    return SimpleNamespace(status=SimpleNamespace(conditions=conditions))


def test_the_one_ready_check():
    assert kube.is_ready(_node("True"))
    assert not kube.is_ready(_node("False")) and not kube.is_ready(_node("Unknown"))
    assert not kube.is_ready(_node(None)) and not kube.is_ready(SimpleNamespace(status=None))


def test_a_phase_waiting_for_its_node_fails_with_the_last_state_or_is_cancelled(monkeypatch):
    monkeypatch.setattr(waits, "list_nodes", lambda target: [{"name": "w1", "ready": False}])
    lines = []
    ctx = SimpleNamespace(
        cluster=SimpleNamespace(name="c"),
        node=SimpleNamespace(name="w1"),
        cancel_event=threading.Event(),
        log=lambda message, **kwargs: lines.append(message),
    )
    with pytest.raises(PhaseError) as info:
        phases.phase_wait_node_ready(ctx, timeout=0)
    assert info.value.message == "node w1 not Ready after 0 seconds (registered, not Ready yet)"
    assert info.value.hint == "check the kubelet on w1"
    assert lines == ["Waiting for node w1 to be Ready in the API server (registered, not Ready yet)…"]
    ctx.cancel_event.set()
    with pytest.raises(OperationCancelled):
        phases.phase_wait_node_ready(ctx, timeout=60)
    monkeypatch.setattr(waits, "list_nodes", lambda target: [{"name": "w1", "ready": True}])
    assert phases.phase_wait_node_ready(ctx)["name"] == "w1"

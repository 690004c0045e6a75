"""Operation kinds: what each kind runs, in which groups, how many groups at once.

Each kind lives with the app that owns its work and is registered from that app's
``AppConfig.ready()`` (``register(OperationKind(...))``); the runner knows phases, not kinds.

Plans and groups: a kind's ``plan`` lists the phases of one operation in execution order. A
phase with ``group=""`` acts on the cluster as a whole; a phase with a group (usually a node
name) acts on that group's machine. Consecutive grouped phases form one *block*: the groups of
a block run concurrently, at most ``max_parallel_groups`` at a time, and the phases of one group
run in plan order. A cluster-level phase is a barrier: it starts once everything before it has
finished, and nothing after it starts before it succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from operations.models import Operation, PhaseRun
    from operations.runner import PhaseContext


class UnknownKind(ValueError):
    """No operation kind of that name is registered (the message lists the known ones)."""


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    description: str
    run: Callable[[PhaseContext], None]
    # May be re-run automatically after a worker died mid-phase (bounded by
    # OPERATION_AUTO_RESUME_LIMIT). A phase that is not idempotent waits for a person to resume.
    idempotent: bool = False


@dataclass(frozen=True)
class PlannedPhase:
    name: str  # a PhaseSpec name of the kind
    group: str = ""  # "" = cluster-level; else e.g. a node name. Phases of one group run in order.
    node_id: int | None = None  # the machine this phase acts on, if any
    description: str = ""  # defaults to the spec's


@dataclass(frozen=True)
class OperationKind:
    name: str  # "init", "join-workers", "upload-certs", ...
    label: str  # "Initialize control plane"
    phases: tuple[PhaseSpec, ...]
    plan: Callable[[Operation], list[PlannedPhase]] | None = None  # default: each spec once, group ""
    max_parallel_groups: Callable[[Operation], int] | int = 1  # worker joins: N; control planes: 1
    mutating: bool = True  # mutating kinds are serialized per cluster
    on_finished: Callable[[Operation], None] | None = None
    # The phase names a person may skip (at the start or on resume); None: any phase not finished.
    skippable: frozenset[str] | None = None
    # The settings an attempt of a phase runs with, read when the attempt starts (so a resume
    # uses them as they are then, not as they were when the operation was queued). The runner
    # records them with the attempt and hands them to the phase as ``ctx.settings``. Keys are the
    # names people know them by ("ignore-preflight-errors"); values are JSON.
    settings: Callable[[Operation, PhaseRun], dict] | None = None

    def spec(self, name: str) -> PhaseSpec | None:
        for spec in self.phases:
            if spec.name == name:
                return spec
        return None

    def planned(self, operation: Operation) -> list[PlannedPhase]:
        """The phases this operation runs, checked: every name known, no duplicate in a group."""
        planned = self.plan(operation) if self.plan is not None else [PlannedPhase(spec.name) for spec in self.phases]
        seen: set[tuple[str, str]] = set()
        for item in planned:
            if self.spec(item.name) is None:
                raise ValueError(f"operation kind {self.name!r} planned unknown phase {item.name!r}")
            if (item.group, item.name) in seen:
                where = f"group {item.group!r}" if item.group else "the cluster-level phases"
                raise ValueError(f"operation kind {self.name!r} planned phase {item.name!r} twice in {where}")
            seen.add((item.group, item.name))
        if not planned:
            raise ValueError(f"operation kind {self.name!r} planned no phases")
        return planned

    def may_skip(self, name: str) -> bool:
        return self.skippable is None or name in self.skippable

    def attempt_settings(self, operation: Operation, phase: PhaseRun) -> dict:
        return dict(self.settings(operation, phase)) if self.settings is not None else {}

    def parallel_groups(self, operation: Operation) -> int:
        bound = self.max_parallel_groups
        value = bound(operation) if callable(bound) else bound
        return max(1, int(value))


_KINDS: dict[str, OperationKind] = {}


def register(kind: OperationKind) -> None:
    """Make ``kind`` known. Registering the same kind again is a no-op; a different one under a
    taken name is an error (two apps must not silently fight over a name)."""
    names = [spec.name for spec in kind.phases]
    if len(names) != len(set(names)):
        raise ValueError(f"operation kind {kind.name!r} declares a phase name twice")
    existing = _KINDS.get(kind.name)
    if existing is not None and existing != kind:
        raise ValueError(f"operation kind {kind.name!r} is already registered differently")
    _KINDS[kind.name] = kind


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def get_kind(name: str) -> OperationKind:
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise UnknownKind(f"unknown operation kind {name!r} (known: {known})") from None


def kinds() -> list[OperationKind]:
    return sorted(_KINDS.values(), key=lambda kind: kind.name)


def label_for(name: str) -> str:
    kind = _KINDS.get(name)
    return kind.label if kind is not None else name


def notify_finished(operation: Operation) -> None:
    """Let the owning app react to the outcome (e.g. the cluster's status), if it wants to."""
    kind = _KINDS.get(operation.kind)
    if kind is not None and kind.on_finished is not None:
        kind.on_finished(operation)

"""Which phases each operation kind runs. Phase code lives with the app that owns the work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from operations.runner import PhaseContext


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    description: str
    run: Callable[[PhaseContext], None]


# kind -> dotted path of a list of PhaseSpec; imported lazily so apps do not import each other at load time.
KIND_PHASES = {
    "prepare-identity": "clusters.identity.PREPARE_IDENTITY_PHASES",
}


def _kind_path(kind: str) -> str:
    try:
        return KIND_PHASES[kind]
    except KeyError:
        raise ValueError(f"unknown operation kind {kind!r}") from None


def phases_for(kind: str) -> list[PhaseSpec]:
    return list(import_string(_kind_path(kind)))


def notify_finished(operation) -> None:
    """Let the owning app react to the outcome (e.g. the cluster's status), if it wants to."""
    module = import_module(_kind_path(operation.kind).rsplit(".", 1)[0])
    hook = getattr(module, "on_operation_finished", None)
    if hook is not None:
        hook(operation)


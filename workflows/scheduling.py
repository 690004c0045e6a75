"""Cordon, uncordon and drain a joined machine's Node, from the cluster page's summary: what
``kubectl cordon``, ``uncordon`` and ``drain --ignore-daemonsets --delete-emptydir-data`` do,
through the API with Kubeboard's credentials (kube.nodes), as background operations so a drain
that waits on a PodDisruptionBudget can be watched, cancelled and resumed.

In workflows/ because it acts on a machine's Node in the cluster's API server (both nouns). Each
kind runs one phase on the node and then reads the Nodes back, so the summary shows the new state.
"""

from __future__ import annotations

from django.utils import timezone

import kube
from audit.services import refusals_of
from clusters import preconditions
from clusters.models import ClusterInventory
from core.phases import PhaseError
from nodes.models import Node
from operations.models import Operation
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import PhaseContext
from operations.services import OperationStateError

CORDON = "cordon"
UNCORDON = "uncordon"
DRAIN = "drain"
ACTIONS = (CORDON, UNCORDON, DRAIN)


class SchedulingRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _no_node(ctx: PhaseContext) -> PhaseError:
    return PhaseError(
        f"the API server has no Node {ctx.node.name}",
        hint="the Node is named as the machine when Kubeboard joins it; check the Nodes under After init",
    )


def _mark(ctx: PhaseContext, unschedulable: bool) -> None:
    with kube.phase_errors():
        found = kube.set_unschedulable(ctx.cluster, ctx.node.name, unschedulable)
    if not found:
        raise _no_node(ctx)
    if unschedulable:
        ctx.log(f"Cordoned {ctx.node.name}: no new Pods are scheduled there; those running stay.")
    else:
        ctx.log(f"Uncordoned {ctx.node.name}: Pods may be scheduled there again.")


def _cordon(ctx: PhaseContext) -> None:
    _mark(ctx, True)


def _uncordon(ctx: PhaseContext) -> None:
    _mark(ctx, False)


def _read_nodes(ctx: PhaseContext) -> None:
    """The Nodes as the API server lists them now, for the cluster page's summary."""
    with kube.phase_errors(context="could not list the Nodes"):
        rows = kube.list_nodes(ctx.cluster)
    ClusterInventory.objects.update_or_create(
        cluster=ctx.cluster, defaults={"api_nodes": rows, "collected_at": timezone.now(), "error": ""}
    )
    ctx.log(f"Read {len(rows)} Node(s) back from the API server.")


_READ = PhaseSpec("read-nodes", "Read the Nodes back from the API server", _read_nodes, idempotent=True)


def _kind(name: str, label: str, spec: PhaseSpec) -> OperationKind:
    def plan(operation: Operation) -> list[PlannedPhase]:
        node_id, group = operation.params["node_id"], operation.params["node"]
        return [PlannedPhase(spec.name, group=group, node_id=node_id), PlannedPhase(_READ.name)]

    return OperationKind(name=name, label=label, phases=(spec, _READ), plan=plan)


KINDS = (
    _kind(CORDON, "Cordon node", PhaseSpec("cordon", "Mark the Node unschedulable", _cordon, idempotent=True)),
    _kind(UNCORDON, "Uncordon node", PhaseSpec("uncordon", "Mark the Node schedulable", _uncordon, idempotent=True)),
    _kind(
        DRAIN,
        "Drain node",
        PhaseSpec(
            "drain",
            "Cordon the Node and evict its Pods (static and DaemonSet Pods stay)",
            kube.phase_drain,
            idempotent=True,
        ),
    ),
)


@refusals_of("operation.queued", SchedulingRefused, OperationStateError)
def start(node: Node, action: str, *, user=None) -> Operation:
    """Refuse what cannot work (nothing is contacted), then queue ``action`` on ``node``'s Node."""
    from operations.services import start_operation

    if action not in ACTIONS:
        raise SchedulingRefused(f"{action!r} is not one of {', '.join(ACTIONS)}")
    cluster = node.cluster
    ready = preconditions.running(cluster)
    if not ready:
        raise SchedulingRefused(ready.reason, hint=ready.hint)
    if node.status != Node.Status.JOINED:
        raise SchedulingRefused(
            f"{node.name} is {node.get_status_display().lower()}: only a joined machine has a Node to {action}",
            hint="join it first",
        )
    return start_operation(cluster, action, user=user, params={"node": node.name, "node_id": node.pk})

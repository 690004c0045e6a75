"""The read-back operation (the cluster page's "Read back now"): the node list from the API
server, then the certificates and static Pod manifests of each control-plane machine, read over
SSH (clusters.inventory reads and stores them). A workflow: it reads the cluster through its nodes.
"""

from __future__ import annotations

from audit.services import refusals_of
from clusters.inventory import api_nodes_summary, machine_summary, read_api, read_machine
from nodes.connect import phase_connection
from nodes.models import Node
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import PhaseContext, PhaseError
from operations.services import start_operation

READ_BACK_KIND = "read-back"


class ReadBackRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _read_api_phase(ctx: PhaseContext) -> None:
    api = read_api(ctx.cluster)
    if api.error:
        raise PhaseError(api.error, hint="check that the control plane runs, then read back again")
    ctx.log(api_nodes_summary(api))


def _read_machine_phase(ctx: PhaseContext) -> None:
    with phase_connection(ctx) as conn:
        machine = read_machine(conn, ctx.node)
    ctx.log(machine_summary(machine))


def _read_back_plan(operation) -> list[PlannedPhase]:
    planned = [PlannedPhase("read-api")]
    for node_id, name in zip(operation.params["node_ids"], operation.params["nodes"], strict=True):
        planned.append(PlannedPhase("read-machine", group=name, node_id=node_id))
    return planned


READ_BACK = OperationKind(
    name=READ_BACK_KIND,
    label="Read back the cluster's state",
    phases=(
        PhaseSpec("read-api", "Read the node list from the API server", _read_api_phase, idempotent=True),
        PhaseSpec(
            "read-machine",
            "Read the certificates and static Pod manifests of a control-plane machine",
            _read_machine_phase,
            idempotent=True,
        ),
    ),
    plan=_read_back_plan,
    max_parallel_groups=4,
    # Reading changes nothing: it may run beside an init or a join.
    mutating=False,
)


@refusals_of("operation.queued", ReadBackRefused, details={"kind": READ_BACK_KIND})
def start_read_back(cluster, *, user=None):
    cluster = type(cluster).objects.get(pk=cluster.pk)  # its state now, not when the page was drawn
    if cluster.status != cluster.Status.RUNNING and not cluster.is_adopted:
        raise ReadBackRefused(f"cluster {cluster.name} has no control plane yet", hint="initialize it first")
    machines = list(cluster.nodes.filter(role=Node.Role.CONTROL_PLANE, status=Node.Status.JOINED).order_by("name"))
    return start_operation(
        cluster,
        READ_BACK_KIND,
        user=user,
        params={"node_ids": [node.pk for node in machines], "nodes": [node.name for node in machines]},
    )

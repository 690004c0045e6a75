"""The cluster page's workflow panels: initialize and join (the actions and the latest init), and
day two (versions, the last snapshot, the soonest certificate, links to the day-two pages and the
reset of a machine)."""

from __future__ import annotations

from clusters.panels import init_state
from nodes.models import Node
from operations.models import Operation
from workflows import certificates, upgrade
from workflows.cluster_forms import InitForm, JoinForm, candidate_machines
from workflows.forms import ResetForm
from workflows.models import EtcdSnapshot


def cluster_actions_panel(cluster, user) -> dict:
    """Initialize / join actions and the latest init (clusters/_actions.html, nodes/_join_actions.html)."""
    Status = cluster.Status
    init_operation = init_state(cluster, user)["init_operation"]
    candidates = list(candidate_machines(cluster))
    workers = [node for node in candidates if node.role == Node.Role.WORKER]
    control_planes = [node for node in candidates if node.role == Node.Role.CONTROL_PLANE]
    can_initialize = (
        not cluster.is_adopted
        and bool(cluster.ca_pin_hash)
        and cluster.status in (Status.READY, Status.INIT_STOPPED)
        and not (init_operation is not None and init_operation.status in Operation.ACTIVE_STATUSES)
    )
    can_join = cluster.status == Status.RUNNING or cluster.is_adopted
    return {
        "init_operation": init_operation,
        "can_initialize": can_initialize,
        "can_join": can_join,
        "candidate_machines": candidates,
        # Initialize takes a control plane; each join form lists the machines of its role.
        "init_candidates": control_planes,
        "worker_candidates": workers,
        "control_plane_candidates": control_planes,
        "init_form": InitForm(cluster=cluster) if can_initialize else None,
        "join_form": JoinForm(cluster=cluster, control_plane=False) if can_join else None,
        "join_control_plane_form": JoinForm(cluster=cluster, control_plane=True) if can_join else None,
    }


def cluster_panel(cluster, user) -> dict:
    return {
        "day2_last_snapshot": EtcdSnapshot.objects.filter(
            cluster=cluster, status=EtcdSnapshot.Status.AVAILABLE
        ).first(),
        "day2_soonest_certificate": certificates.soonest_leaf(cluster),
        "day2_last_upgrade": cluster.operations.filter(kind=upgrade.KIND).order_by("-created_at", "-id").first(),
        "day2_reset_form": ResetForm(cluster=cluster),
    }

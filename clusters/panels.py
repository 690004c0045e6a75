"""What the cluster page shows, one panel per app.

Each app owns its panel: a function ``(cluster, user) -> dict`` adding to the page's context,
and a template ``<app>/_cluster_<panel>.html`` included by ``clusters/cluster_detail.html``.
"""

from __future__ import annotations

from django.utils.module_loading import import_string

from core.permissions import ADMIN, OPERATE, can

PANELS = [
    "clusters.panels.engine_panel",
    "nodes.panels.cluster_panel",
    "tokens.panels.cluster_panel",
    "operations.panels.cluster_panel",
    "daytwo.panels.cluster_panel",
    "audit.panels.cluster_panel",
]


def cluster_panels(cluster, user) -> dict:
    context = {
        "cluster": cluster,
        "authorities": cluster.authorities.order_by("name"),
        "can_operate": can(user, OPERATE, cluster),
        "can_admin": can(user, ADMIN, cluster),
    }
    for path in PANELS:
        context.update(import_string(path)(cluster, user))
    return context


def engine_panel(cluster, user) -> dict:
    """Initialize / join actions, the engine settings, and what the last read-back found."""
    from clusters.action_forms import EngineSettingsForm, InitForm, JoinForm, KubeconfigForm, candidate_machines
    from clusters.init import KIND as INIT_KIND
    from clusters.models import ClusterInventory, MachineInventory
    from operations.models import Operation

    Status = cluster.Status
    init_operation = cluster.operations.filter(kind=INIT_KIND).order_by("-created_at", "-id").first()
    candidates = list(candidate_machines(cluster))
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
        "init_form": InitForm(cluster=cluster) if can_initialize else None,
        "join_form": JoinForm(cluster=cluster) if can_join else None,
        "settings_form": EngineSettingsForm(instance=cluster),
        "kubeconfig_form": KubeconfigForm() if not cluster.is_adopted else None,
        "cluster_inventory": ClusterInventory.objects.filter(cluster=cluster).first(),
        "machine_inventories": MachineInventory.objects.filter(node__cluster=cluster).select_related("node"),
    }

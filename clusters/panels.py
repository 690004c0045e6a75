"""What the cluster page shows, one panel per app.

Each app owns its panel: a function ``(cluster, user) -> dict`` adding to the page's context,
and a template ``<app>/_cluster_<panel>.html`` included by ``clusters/cluster_detail.html``.

Some parts of the page follow the cluster while it is open (``LIVE_PARTS``, served by
``clusters.live``): each has a cheap version and renders alone, so a poll that finds nothing
new costs a few small queries and no rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, Max, OuterRef, Subquery
from django.utils.module_loading import import_string

from core.formatting import relative_text
from core.permissions import ADMIN, OPERATE, can

PANELS = [
    "workflows.next_step.panel",
    "workflows.summary.panel",
    "clusters.panels.engine_panel",
    "nodes.panels.cluster_panel",
    "tokens.panels.cluster_panel",
    "operations.panels.cluster_panel",
    "workflows.panels.cluster_actions_panel",
    "workflows.panels.cluster_panel",
    "audit.panels.cluster_panel",
]


@dataclass(frozen=True)
class LivePart:
    """A part of the cluster page that follows the cluster while the page is open."""

    element_id: str
    template: str  # renders the element with that id and nothing else
    # Dotted path of ``(cluster) -> value`` (JSON-able, str() for the rest) that changes whenever
    # what the part shows does, read with the fewest queries (no rendering, no secret decrypted).
    version: str
    # Dotted path of ``(cluster, user) -> dict``: the template's context besides base_context.
    context: str
    # Dotted path of ``() -> {name: expression}``: single values the version needs, read with the
    # cluster's own row (which every poll reads anyway, to check access) instead of a query each.
    # Names start with ``live_``; the version reads them from the cluster (clusters.live.clusters).
    fields: str = ""
    # Element ids of parts listed before this one whose versions are part of its own: a part that
    # restates what they show (the next step, the summary) changes when they do, for no query.
    includes: tuple[str, ...] = ()


# Forms and settings are not live: they change by the person's own actions, which reload the page.
LIVE_PARTS = (
    LivePart(
        "cluster-status",
        "clusters/_cluster_status.html",
        "clusters.panels.status_version",
        "clusters.panels.no_context",
    ),
    LivePart(
        "init-state",
        "clusters/_init_state.html",
        "clusters.panels.init_state_version",
        "clusters.panels.init_state",
        "clusters.panels.init_state_fields",
    ),
    LivePart("node-list", "nodes/_node_list.html", "nodes.panels.node_list_version", "nodes.panels.cluster_panel"),
    LivePart(
        "token-panel",
        "tokens/_cluster_token_panel.html",
        "tokens.panels.cluster_panel_version",
        "tokens.panels.cluster_panel",
        "tokens.panels.cluster_panel_fields",
    ),
    LivePart(
        "operations",
        "operations/_cluster_operations.html",
        "operations.panels.cluster_panel_version",
        "operations.panels.cluster_panel",
    ),
    LivePart(
        "inventory",
        "clusters/_inventory.html",
        "clusters.panels.inventory_version",
        "clusters.panels.inventory",
        "clusters.panels.inventory_fields",
    ),
    # The top of the page (workflows/): what to do next, and the cluster at a glance.
    LivePart(
        "next-step",
        "clusters/_next_step.html",
        "workflows.next_step.version",
        "workflows.next_step.panel",
        "workflows.next_step.fields",
        includes=("cluster-status", "init-state", "node-list", "operations"),
    ),
    LivePart(
        "summary",
        "clusters/_summary.html",
        "workflows.summary.version",
        "workflows.summary.panel",
        "workflows.summary.fields",
        includes=("cluster-status", "node-list", "token-panel", "operations", "inventory"),
    ),
)


def base_context(cluster, user) -> dict:
    """What every panel and live part may use."""
    return {"cluster": cluster, "can_operate": can(user, OPERATE, cluster), "can_admin": can(user, ADMIN, cluster)}


def cluster_panels(cluster, user) -> dict:
    context = base_context(cluster, user) | {"authorities": cluster.authorities.order_by("name")}
    for path in PANELS:
        context.update(import_string(path)(cluster, user))
    return context


def engine_panel(cluster, user) -> dict:
    """The engine settings, and what the last read-back found (the initialize and join actions are
    workflows.panels.cluster_actions_panel)."""
    from clusters.action_forms import EngineSettingsForm, KubeconfigForm, PodNetworkForm

    return {
        "settings_form": EngineSettingsForm(instance=cluster),
        "pod_network_form": PodNetworkForm(instance=cluster),
        **pod_network_state(cluster),
        "kubeconfig_form": KubeconfigForm() if not cluster.is_adopted else None,
        **inventory(cluster, user),
    }


def pod_network_state(cluster) -> dict:
    """What the pod network part says besides the choice: what was rolled out, and the flag of a
    cluster that has none (its nodes stay NotReady on real machines)."""
    from addons import catalog

    applied = cluster.pod_network_applied
    if applied:
        network, _, version = applied.partition(" ")
        applied_label = f"{catalog.NETWORK_LABELS.get(network, network)} {version}"
    else:
        applied_label = "nothing yet"
    flag = ""
    if cluster.pod_network == catalog.NONE:
        flag = (
            "No pod network: Kubeboard installs none on this cluster. Until you apply one yourself, "
            "nodes on real machines stay NotReady and no Pod gets an address."
        )
    manifest = None
    if cluster.pod_network == catalog.CUSTOM:
        from clusters.models import PodNetworkManifest

        manifest = PodNetworkManifest.objects.filter(cluster=cluster).defer("text").first()
    return {"pod_network_applied_label": applied_label, "pod_network_flag": flag, "pod_network_manifest": manifest}


def _init_operations(cluster):
    from clusters.models import INIT_KIND

    return cluster.operations.filter(kind=INIT_KIND).order_by("-created_at", "-id")


def inventory(cluster, user) -> dict:
    """What the last read-back found (the "After init" part)."""
    from clusters.models import ClusterInventory, MachineInventory

    return {
        "cluster_inventory": ClusterInventory.objects.filter(cluster=cluster).first(),
        "machine_inventories": MachineInventory.objects.filter(node__cluster=cluster).select_related("node"),
    }


def init_state(cluster, user) -> dict:
    return {"init_operation": _init_operations(cluster).first()}


def no_context(cluster, user) -> dict:
    return {}


def status_version(cluster) -> str:
    return cluster.status


def init_state_fields() -> dict:
    from clusters.models import INIT_KIND
    from operations.models import Operation

    latest = Operation.objects.filter(cluster=OuterRef("pk"), kind=INIT_KIND).order_by("-created_at", "-id")
    # The operation's node (params) is set when it is queued: its id stands for it.
    return {f"live_init_{name}": Subquery(latest.values(name)[:1]) for name in ("pk", "status", "error")}


def init_state_version(cluster) -> tuple:
    return (
        cluster.is_adopted,
        bool(cluster.ca_pin_hash),
        cluster.live_init_pk,
        cluster.live_init_status,
        cluster.live_init_error,
    )


def inventory_fields() -> dict:
    from clusters.models import MachineInventory

    # Every read-back stamps collected_at (the API's and each machine's), and a machine's goes
    # only with its node: the count and the newest stamp change with every read-back.
    machines = MachineInventory.objects.filter(node__cluster=OuterRef("pk")).order_by().values("node__cluster")
    return {
        "live_inventory_pk": F("inventory__pk"),
        "live_inventory_collected_at": F("inventory__collected_at"),
        "live_inventory_error": F("inventory__error"),
        "live_machine_inventories": Subquery(machines.annotate(count=Count("pk")).values("count")),
        "live_machines_collected_at": Subquery(machines.annotate(newest=Max("collected_at")).values("newest")),
    }


def inventory_version(cluster) -> tuple:
    collected_at = cluster.live_inventory_collected_at
    return (
        cluster.live_inventory_pk,
        collected_at,
        relative_text(collected_at),  # "Read back 3 min ago"
        cluster.live_inventory_error,
        cluster.live_machine_inventories,
        cluster.live_machines_collected_at,
    )

"""The pod network add-on operation: install, upgrade to another pinned version, or re-apply
after drift — one kind, since all three are "make the cluster hold these objects".

The objects are a pinned upstream manifest with only its documented substitutions
(``addons.manifests.render``), applied with server-side apply as field manager ``kubeboard``
(``kube.apply``): one event per object (created, configured or unchanged), then a wait until
every DaemonSet has a ready Pod on every schedulable node it tolerates and every Deployment its
replicas ready; on a timeout the phase names the Pods and nodes that are not ready and why (their
conditions, container states and warning events).

In workflows/ because it reads a cluster (its pod subnet) and acts on its API server. Started
from the cluster page's next step (``start_pod_network`` with the cluster's saved choice); init
runs the same apply and rollout as its ``pod-network`` phase (``init_phase``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kube
from addons import catalog, manifests
from audit.services import refusals_of
from clusters import preconditions
from clusters.models import Cluster
from core.phases import OperationCancelled, PhaseError
from core.waiting import WaitCancelled, WaitTimedOut, wait_until
from kube import apply as kube_apply
from operations.models import Operation
from operations.registry import OperationKind, PhaseSpec
from operations.runner import PhaseContext
from operations.services import OperationStateError

KIND = "pod-network"
ROLLOUT_TIMEOUT = 300.0
ROLLOUT_POLL = 2.0


class PodNetworkRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def choice_of(params: dict[str, Any]) -> manifests.Choice:
    return manifests.Choice(params["network"], params.get("version", ""), params.get("image_registry", ""))


def desired_objects(cluster: Cluster, choice: manifests.Choice) -> list[dict[str, Any]]:
    """What Kubeboard applies for ``choice`` on ``cluster`` (its pod subnet substituted)."""
    try:
        return manifests.render(choice, cluster.pod_subnet)
    except (manifests.ManifestError, catalog.CatalogError) as exc:
        raise PhaseError(str(exc), hint="choose a pinned version and a pod subnet that fits it") from None


def cluster_choice(cluster: Cluster) -> manifests.Choice | None:
    """The cluster's saved choice as something to apply; None for none, custom or not chosen."""
    if cluster.pod_network not in (catalog.FLANNEL, catalog.CALICO):
        return None
    return manifests.Choice(cluster.pod_network, cluster.pod_network_version, cluster.pod_network_registry)


def _apply(ctx: PhaseContext) -> None:
    apply_choice(ctx, choice_of(ctx.operation.params))


def apply_choice(ctx: PhaseContext, choice: manifests.Choice) -> None:
    objects = desired_objects(ctx.cluster, choice)
    label = catalog.pinned(choice.network, choice.version).label
    ctx.log(f"Applying {label}: {len(objects)} objects, server-side apply as field manager {kube_apply.FIELD_MANAGER}.")
    counts: dict[str, int] = {}

    def report(applied: kube_apply.Applied) -> None:
        counts[applied.action] = counts.get(applied.action, 0) + 1
        ctx.log(
            f"{applied.description} {applied.action} (resourceVersion {applied.resource_version})",
            object=applied.description,
            action=applied.action,
            resource_version=applied.resource_version,
        )

    with kube.phase_errors(context=f"could not apply {label}"), kube.connect(ctx.cluster, f"apply {label}") as client:
        kube_apply.apply(client, objects, describe=manifests.describe, on_applied=report)
    ctx.log(", ".join(f"{n} {action}" for action, n in sorted(counts.items())) + ".")


def rollouts(cluster: Cluster, objects: list[dict[str, Any]]) -> list[kube_apply.Rollout]:
    with kube.connect(cluster, "read the add-on's rollout") as client:
        return [r for r in (kube_apply.rollout(client, obj) for obj in objects) if r is not None]


def _rollout(ctx: PhaseContext) -> None:
    choice = choice_of(ctx.operation.params)
    wait_rollout(ctx, choice, float(ctx.operation.params.get("rollout_timeout") or ROLLOUT_TIMEOUT))


def mark_applied(cluster: Cluster, choice: manifests.Choice) -> None:
    """Record what is rolled out, so the next step stops offering it (and offers a changed choice)."""
    version = catalog.pinned(choice.network, choice.version).version
    Cluster.objects.filter(pk=cluster.pk).update(pod_network_applied=f"{choice.network} {version}")


def wait_rollout(ctx: PhaseContext, choice: manifests.Choice, timeout: float) -> None:
    objects = desired_objects(ctx.cluster, choice)
    reported: set[str] = set()
    waiting: list[kube_apply.Rollout] = []

    def rolled_out() -> bool | None:
        with kube.phase_errors(context="could not read the rollout"):
            states = rollouts(ctx.cluster, objects)
        for state in states:
            if state.ok and state.description not in reported:
                reported.add(state.description)
                ctx.log(f"{state.description} rolled out: {state.ready}/{state.desired} ready.")
        waiting[:] = [s for s in states if not s.ok]
        return None if waiting else True

    try:
        wait_until(rolled_out, timeout=timeout, interval=ROLLOUT_POLL, cancel=ctx.cancel_event)
    except WaitCancelled:
        raise OperationCancelled("cancelled while waiting for the rollout") from None
    except WaitTimedOut:
        lines = [
            f"{s.description}: {s.ready}/{s.desired} ready, {s.updated} updated; " + " | ".join(s.problems)
            for s in waiting
        ]
        for line in lines:
            ctx.log(line, level="error")
        raise PhaseError(
            f"not rolled out after {timeout:.0f} s: " + "; ".join(lines),
            hint="look at the named Pods' nodes (image pulls from the registry, the kubelet), then resume",
        ) from None
    mark_applied(ctx.cluster, choice)


POD_NETWORK = OperationKind(
    name=KIND,
    label="Apply pod network",
    phases=(
        PhaseSpec("apply", "Server-side apply the add-on's objects (field manager kubeboard)", _apply, idempotent=True),
        PhaseSpec(
            "rollout", "Wait for every DaemonSet and Deployment to be ready on every node", _rollout, idempotent=True
        ),
    ),
)


def init_phase(ctx: PhaseContext) -> None:
    """Init's pod-network phase (after kubeadm's addon): the cluster's choice, read now (a resume
    after changing it applies the new one), applied and waited for like the operation's phases."""
    cluster = Cluster.objects.get(pk=ctx.cluster.pk)
    choice = cluster_choice(cluster)
    if choice is None:
        ctx.log(
            f"Pod network: {cluster.pod_network_label}. Kubeboard applies none on this cluster: skipped. "
            "On real machines the nodes stay NotReady until a network add-on runs.",
            level="warning",
        )
        return
    apply_choice(ctx, choice)
    wait_rollout(ctx, choice, float(ctx.params.get("rollout_timeout") or ROLLOUT_TIMEOUT))


@dataclass(frozen=True)
class ObjectDrift:
    description: str
    missing: bool
    drift: list[kube_apply.Drift]


def read_drift(cluster: Cluster, choice: manifests.Choice) -> list[ObjectDrift]:
    """Each applied object whose live state differs from what Kubeboard applies, and how."""
    objects = manifests.render(choice, cluster.pod_subnet)
    found = []
    with kube.connect(cluster, "read the add-on's objects") as client:
        discovery = kube_apply.Discovery(client)
        for obj in objects:
            live = kube_apply.get_object(client, discovery.path(obj))
            if live is None:
                found.append(ObjectDrift(manifests.describe(obj), True, []))
                continue
            changes = kube_apply.drift(obj, live)
            if changes:
                found.append(ObjectDrift(manifests.describe(obj), False, changes))
    return found


@refusals_of("operation.queued", PodNetworkRefused, OperationStateError, details={"kind": KIND})
def start_pod_network(
    cluster: Cluster, network: str, *, version: str = "", image_registry: str = "", user=None, **extra: Any
) -> Operation:
    """Refuse what cannot work (nothing contacted), then queue the apply of a pinned add-on."""
    from operations.services import start_operation

    ready = preconditions.running(cluster)
    if not ready:
        raise PodNetworkRefused(ready.reason, hint=ready.hint)
    if network not in (catalog.FLANNEL, catalog.CALICO):
        label = catalog.NETWORK_LABELS.get(network, "not chosen") if network else "not chosen"
        raise PodNetworkRefused(
            f"the pod network is {label}: Kubeboard applies only a pinned Flannel or Calico",
            hint="choose Flannel or Calico under Settings, Pod network",
        )
    try:
        pinned = catalog.pinned(network, version)
    except catalog.CatalogError as exc:
        raise PodNetworkRefused(str(exc)) from None
    machines = list(cluster.nodes.values_list("address", flat=True))
    problems = manifests.pod_subnet_problems(network, cluster.pod_subnet, cluster.service_subnet, machines)
    if problems:
        raise PodNetworkRefused("; ".join(problems), hint="choose a pod subnet that fits")
    params = {"network": network, "version": pinned.version, "image_registry": image_registry.strip(), **extra}
    return start_operation(cluster, KIND, user=user, params=params)

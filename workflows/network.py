"""The pod network add-on operation: install, upgrade to another pinned version, or re-apply
after drift — one kind, since all three are "make the cluster hold these objects".

The objects are a pinned upstream manifest with only its documented substitutions
(``addons.manifests.render``), or the cluster's stored custom manifest (checked again against the
SHA-256 the operation was started with) with only its images moved, applied with server-side apply
as field manager ``kubeboard`` (``kube.apply``): one event per object (created, configured or
unchanged). Then every object Kubeboard applied before (the cluster's ``pod_network_inventory``)
that the manifest applied now no longer has is deleted, if Kubeboard's apply still manages it —
one event per object — so an upgrade changes only what the new manifest changes. Then a wait until
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
from clusters import pod_network, preconditions
from clusters.models import Cluster, PodNetworkManifest
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


APPLIED_NETWORKS = (catalog.FLANNEL, catalog.CALICO, catalog.CUSTOM)


def choice_of(params: dict[str, Any]) -> manifests.Choice:
    return manifests.Choice(
        params["network"], params.get("version", ""), params.get("image_registry", ""), params.get("sha256", "")
    )


def label_of(choice: manifests.Choice) -> str:
    if choice.network == catalog.CUSTOM:
        return f"{catalog.NETWORK_LABELS[catalog.CUSTOM]} {choice.version}"
    return catalog.pinned(choice.network, choice.version).label


def _custom_text(cluster: Cluster, choice: manifests.Choice) -> tuple[bytes, str]:
    """The stored custom manifest's bytes and source, refused unless they are the ones chosen
    (checked again here, so a row changed behind Kubeboard's back is never applied)."""
    stored = PodNetworkManifest.objects.filter(cluster=cluster).first()
    if stored is None:
        raise manifests.ManifestError("no custom manifest is stored for this cluster; upload one or give its URL")
    data = stored.text.encode("utf-8")
    if stored.sha256 != choice.sha256:
        raise manifests.ManifestError(
            f"the stored custom manifest is sha256 {stored.sha256[:16]}…, not the {choice.sha256[:16]}… this "
            "operation was started with: it was replaced meanwhile; start the pod network again"
        )
    manifests.check_sha256(data, choice.sha256, source=stored.source)
    return data, stored.source


def render(cluster: Cluster, choice: manifests.Choice) -> list[dict[str, Any]]:
    """What Kubeboard applies for ``choice`` on ``cluster``: a pinned manifest with its pod subnet
    substituted, or the stored custom manifest; either with its images moved to the registry."""
    if choice.network == catalog.CUSTOM:
        data, source = _custom_text(cluster, choice)
        return manifests.render_custom(data, choice.image_registry, source=source)
    return manifests.render(choice, cluster.pod_subnet)


def desired_objects(cluster: Cluster, choice: manifests.Choice) -> list[dict[str, Any]]:
    """``render``, its refusals as the phase's error."""
    try:
        return render(cluster, choice)
    except (manifests.ManifestError, catalog.CatalogError) as exc:
        raise PhaseError(
            str(exc), hint="choose a pinned version and a pod subnet that fits it, or a manifest"
        ) from None


def cluster_choice(cluster: Cluster) -> manifests.Choice | None:
    """The cluster's saved choice as something to apply; None for none or not chosen."""
    if cluster.pod_network not in APPLIED_NETWORKS:
        return None
    sha256 = ""
    if cluster.pod_network == catalog.CUSTOM:
        sha256 = PodNetworkManifest.objects.filter(cluster=cluster).values_list("sha256", flat=True).first() or ""
    return manifests.Choice(cluster.pod_network, cluster.pod_network_version, cluster.pod_network_registry, sha256)


def _apply(ctx: PhaseContext) -> None:
    apply_choice(ctx, choice_of(ctx.operation.params))


def _entry(obj: dict[str, Any]) -> dict[str, Any]:
    """An object's identity as the inventory keeps it (and as kube_apply.prune takes it)."""
    metadata = {"name": obj["metadata"]["name"]}
    if obj["metadata"].get("namespace"):
        metadata["namespace"] = obj["metadata"]["namespace"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": metadata}


def applied_inventory(cluster: Cluster) -> list[dict[str, Any]]:
    """What Kubeboard applied on ``cluster`` for its pod network, oldest first. A cluster whose
    pinned add-on was rolled out before the inventory was kept gets that pinned manifest's objects."""
    if cluster.pod_network_inventory:
        return list(cluster.pod_network_inventory)
    network, _, version = cluster.pod_network_applied.partition(" ")
    if network in (catalog.FLANNEL, catalog.CALICO):
        try:
            return [_entry(o) for o in manifests.render(manifests.Choice(network, version), cluster.pod_subnet)]
        except (manifests.ManifestError, catalog.CatalogError):
            return []
    return []


def _keep_inventory(cluster: Cluster, entries: list[dict[str, Any]]) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(pod_network_inventory=entries)


def apply_choice(ctx: PhaseContext, choice: manifests.Choice) -> None:
    """Apply ``choice``'s objects, then delete what Kubeboard applied before that they no longer
    hold (an upgrade changes only what the new manifest changes, a dropped object included)."""
    objects = desired_objects(ctx.cluster, choice)
    label = label_of(choice)
    ctx.log(f"Applying {label}: {len(objects)} objects, server-side apply as field manager {kube_apply.FIELD_MANAGER}.")
    counts: dict[str, int] = {}
    before = applied_inventory(Cluster.objects.get(pk=ctx.cluster.pk))
    now = [_entry(o) for o in objects]

    def report(applied: kube_apply.Applied) -> None:
        counts[applied.action] = counts.get(applied.action, 0) + 1
        ctx.log(
            f"{applied.description} {applied.action} (resourceVersion {applied.resource_version})",
            object=applied.description,
            action=applied.action,
            resource_version=applied.resource_version,
        )

    def pruned(done: kube_apply.Applied) -> None:
        counts[done.action] = counts.get(done.action, 0) + 1
        said = {
            "deleted": "deleted: the manifest applied now no longer has it",
            "gone": "no longer there (the manifest applied now no longer has it)",
            "kept": "not deleted although the manifest applied now no longer has it: Kubeboard no longer "
            "manages it (another field manager took it over, or it was made again by someone else)",
        }[done.action]
        ctx.log(
            f"{done.description} {said}",
            level="warning" if done.action == "kept" else "info",
            object=done.description,
            action=done.action,
            resource_version=done.resource_version,
        )

    with kube.phase_errors(context=f"could not apply {label}"), kube.connect(ctx.cluster, f"apply {label}") as client:
        discovery = kube_apply.Discovery(client)
        wanted = {kube_apply.identity(discovery, o) for o in objects}
        # Written ahead: if this apply stops half-way, the objects it made are still Kubeboard's
        # to prune when another manifest is applied later.
        _keep_inventory(ctx.cluster, before + [e for e in now if e not in before])
        kube_apply.apply(client, objects, describe=manifests.describe, on_applied=report, discovery=discovery)
        stale = [e for e in reversed(before) if kube_apply.identity(discovery, e) not in wanted]
        kube_apply.prune(client, stale, describe=manifests.describe, on_pruned=pruned, discovery=discovery)
    _keep_inventory(ctx.cluster, now)
    ctx.log(", ".join(f"{n} {action}" for action, n in sorted(counts.items())) + ".")


def rollouts(cluster: Cluster, objects: list[dict[str, Any]]) -> list[kube_apply.Rollout]:
    with kube.connect(cluster, "read the add-on's rollout") as client:
        return [r for r in (kube_apply.rollout(client, obj) for obj in objects) if r is not None]


def _rollout(ctx: PhaseContext) -> None:
    choice = choice_of(ctx.operation.params)
    wait_rollout(ctx, choice, float(ctx.operation.params.get("rollout_timeout") or ROLLOUT_TIMEOUT))


def mark_applied(cluster: Cluster, choice: manifests.Choice) -> None:
    """Record what is rolled out, so the next step stops offering it (and offers a changed choice)."""
    if choice.network == catalog.CUSTOM:
        version = manifests.custom_version(choice.sha256)
    else:
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
    objects = render(cluster, choice)
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
    """Refuse what cannot work (nothing contacted), then queue the apply of a pinned add-on or of
    the cluster's stored custom manifest (``version`` is then its custom_version, if given)."""
    from operations.services import start_operation

    ready = preconditions.running(cluster)
    if not ready:
        raise PodNetworkRefused(ready.reason, hint=ready.hint)
    if network not in APPLIED_NETWORKS:
        label = catalog.NETWORK_LABELS.get(network, "not chosen") if network else "not chosen"
        raise PodNetworkRefused(
            f"the pod network is {label}: Kubeboard applies only a pinned Flannel or Calico, or a custom manifest",
            hint="choose Flannel, Calico or a custom manifest under Settings, Pod network",
        )
    sha256 = ""
    if network == catalog.CUSTOM:
        stored = PodNetworkManifest.objects.filter(cluster=cluster).values_list("sha256", flat=True).first()
        if stored is None:
            raise PodNetworkRefused(
                "no custom manifest is stored for this cluster",
                hint="upload one, or give its URL and SHA-256, under Settings, Pod network",
            )
        if version and version != manifests.custom_version(stored):
            raise PodNetworkRefused(
                f"the stored custom manifest is {manifests.custom_version(stored)}, not {version}",
                hint="the manifest was replaced meanwhile; reload the cluster page",
            )
        sha256, version = stored, manifests.custom_version(stored)
    else:
        try:
            version = catalog.pinned(network, version).version
        except catalog.CatalogError as exc:
            raise PodNetworkRefused(str(exc)) from None
    problems = pod_network.cluster_fit_problems(cluster, network)
    if problems:
        raise PodNetworkRefused("; ".join(problems), hint="choose a pod subnet that fits")
    params = {"network": network, "version": version, "image_registry": image_registry.strip(), **extra}
    if sha256:
        params["sha256"] = sha256
    return start_operation(cluster, KIND, user=user, params=params)

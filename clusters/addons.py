"""The cluster page's Add-ons section: the pod network (CNI), CoreDNS and kube-proxy, each with
desired/ready, version, a state, and for the pod network the drift from what Kubeboard applied.

Read live from the API server (``kube.addons``) within ``kube.addons.BUDGET`` seconds, and kept
per cluster for ``CACHE_SECONDS`` in Django's cache, so any number of open pages cost one read
per cluster per interval per process. The page loads without it: the section asks for it after
the page is shown (htmx, ``clusters:addons``) and asks again while something rolls out, is
degraded or could not be read, so a slow or silent API server never holds up the page, and an
unreachable one is said in the section (the typed error's words), never a 500.

States: **not managed** when the cluster's pod network is None or not chosen (Kubeboard applies
none and has nothing to compare with), or when what it applied cannot be had any more (a custom
manifest replaced since, a pinned version dropped); otherwise the first that matches:

* **not installed**: a workload is absent (for the pod network: the fix is the Pod network action);
* **degraded**: fewer Pods ready than desired, and one not ready started over
  ``kube.addons.STARTING`` seconds ago;
* **drifted**: a field Kubeboard applied holds something else now (the pod network only: CoreDNS
  and kube-proxy are kubeadm's), or an object it applied was deleted; fixed by a re-apply;
* **rolling out**: a new spec not on every Pod yet, or Pods not ready that just started;
* **healthy**: every desired Pod ready and running the current spec.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.utils import timezone

import kube
from addons import catalog, manifests
from clusters import preconditions
from clusters.models import Cluster, PodNetworkManifest
from kube import addons as kube_addons
from kube import apply as kube_apply
from kube.addons import ObjectDrift, Workload, WorkloadRef

log = logging.getLogger(__name__)

CACHE_SECONDS = 10
POLL_SECONDS = 5  # how often an open section reads again while something is not settled

HEALTHY, ROLLING_OUT, DEGRADED, DRIFTED = "healthy", "rolling out", "degraded", "drifted"
NOT_INSTALLED, NOT_MANAGED = "not installed", "not managed"
BADGES = {
    HEALTHY: "ready",
    ROLLING_OUT: "running",
    DEGRADED: "failed",
    DRIFTED: "failed",
    NOT_INSTALLED: "failed",
    NOT_MANAGED: "queued",
}

COREDNS = WorkloadRef("Deployment", "kube-system", "coredns")
KUBE_PROXY = WorkloadRef("DaemonSet", "kube-system", "kube-proxy")
KUBEADM_FIX = (
    "kubeadm's addon phase installs it (kubeadm init phase addon {name}); it was skipped at init, or deleted since"
)


@dataclass(frozen=True)
class Addon:
    key: str  # "pod-network", "coredns", "kube-proxy": the page's data-addon
    name: str  # "Pod network", "CoreDNS", "kube-proxy"
    source: str  # "Flannel v0.28.9, applied by Kubeboard", "kubeadm's addon phase"
    state: str
    workloads: tuple[Workload, ...] = ()
    drift: tuple[ObjectDrift, ...] = ()
    drift_unchecked: int = 0  # applied objects not compared within the read's budget
    fix: str = ""
    reapply: bool = False  # the fix is the Pod network action (a re-apply of the cluster's choice)

    @property
    def badge(self) -> str:
        """The status badge's colour class (kubeboard.css's status-*)."""
        return BADGES[self.state]

    @property
    def version(self) -> str:
        tags: list[str] = []
        for workload in self.workloads:
            tags += [t for t in workload.versions if t not in tags]
        return ", ".join(tags)

    @property
    def problems(self) -> list[str]:
        return [p for w in self.workloads for p in w.problems]


@dataclass(frozen=True)
class AddonsHealth:
    addons: tuple[Addon, ...] = ()
    read_at: datetime | None = None
    error: str = ""  # the API server could not be read: why, in the typed error's words
    unavailable: str = ""  # nothing to read yet (the cluster is not running): why

    @property
    def settling(self) -> bool:
        """Whether the section should read again soon: something rolls out, or the read failed."""
        return bool(self.error) or any(a.state in (ROLLING_OUT, DEGRADED) for a in self.addons)


@functools.lru_cache(maxsize=8)
def _rendered(network: str, version: str, registry: str, pod_subnet: str) -> tuple[dict[str, Any], ...]:
    # Calico's manifest takes ~0.2 s to parse; the same choice renders the same objects.
    return tuple(manifests.render(manifests.Choice(network, version, registry), pod_subnet))


@functools.lru_cache(maxsize=4)
def _rendered_custom(sha256: str, registry: str, text: str) -> tuple[dict[str, Any], ...]:
    return tuple(manifests.render_custom(text.encode("utf-8"), registry, source="the stored custom manifest"))


# The pod networks Kubeboard applies, so has objects to compare with.
APPLIED_NETWORKS = (catalog.FLANNEL, catalog.CALICO, catalog.CUSTOM)


def applied_choice(cluster: Cluster) -> manifests.Choice | None:
    """What Kubeboard applied (``pod_network_applied``), else what it is to apply; None when it
    applies nothing (None, not chosen)."""
    if cluster.pod_network_applied:
        network, _, version = cluster.pod_network_applied.partition(" ")
    elif cluster.pod_network in APPLIED_NETWORKS:
        network, version = cluster.pod_network, cluster.pod_network_version
    else:
        return None
    if network not in APPLIED_NETWORKS:
        return None
    return manifests.Choice(network, version, cluster.pod_network_registry)


def label_of(choice: manifests.Choice) -> str:
    """ "Flannel v0.28.9", "Custom manifest sha256:1a2b…", as the rest of the page names them."""
    return f"{catalog.NETWORK_LABELS.get(choice.network, choice.network)} {choice.version}".strip()


def applied_objects(cluster: Cluster, choice: manifests.Choice) -> tuple[dict[str, Any], ...]:
    """The objects Kubeboard applies for ``choice``: the pinned manifest with the cluster's
    substitutions, or the stored custom manifest if it is the one rolled out (by its version).
    Raises ManifestError or CatalogError when they cannot be had."""
    if choice.network != catalog.CUSTOM:
        return _rendered(choice.network, choice.version, choice.image_registry, cluster.pod_subnet)
    stored = PodNetworkManifest.objects.filter(cluster=cluster).first()
    if stored is None or manifests.custom_version(stored.sha256) != choice.version:
        raise manifests.ManifestError(
            f"the custom manifest rolled out ({choice.version}) is no longer the one stored, so its objects "
            "cannot be compared; apply the stored one with the Pod network action"
        )
    return _rendered_custom(stored.sha256, choice.image_registry, stored.text)


def _workloads_of(objects: tuple[dict[str, Any], ...]) -> list[WorkloadRef]:
    return [
        WorkloadRef(o["kind"], (o.get("metadata") or {}).get("namespace") or "default", o["metadata"]["name"])
        for o in objects
        if o.get("kind") in kube_addons.WORKLOAD_KINDS
    ]


def state_of(workloads: list[Workload], drift: list[ObjectDrift] | tuple = ()) -> str:
    """The add-on's state from its workloads and drift (the module's list, first match wins)."""
    if any(not w.found for w in workloads):
        return NOT_INSTALLED
    if any(w.ready < w.desired and not w.starting for w in workloads):
        return DEGRADED
    if drift:
        return DRIFTED
    if not all(w.healthy for w in workloads):
        return ROLLING_OUT
    return HEALTHY


def _pod_network(
    cluster: Cluster, state: kube_addons.AddonsState | None, objects, choice, unreadable: str = ""
) -> Addon:
    if choice is None:
        fix = (
            "Kubeboard applies no pod network on this cluster, so it has nothing to watch: choose Flannel, "
            "Calico or a custom manifest under Settings, Pod network, then apply it."
        )
        return Addon("pod-network", "Pod network", cluster.pod_network_label, NOT_MANAGED, fix=fix)
    label = label_of(choice)
    if unreadable:
        return Addon("pod-network", "Pod network", label, NOT_MANAGED, fix=unreadable)
    refs = _workloads_of(objects)
    workloads = tuple(state.workloads[ref] for ref in refs) if state else ()
    drift = tuple(state.drift.found) if state else ()
    unchecked = state.drift.total - state.drift.checked if state else 0
    applied = bool(cluster.pod_network_applied)
    source = f"{label}, applied by Kubeboard (field manager {kube_apply.FIELD_MANAGER})"
    if not applied:
        source = f"{label}, chosen and not rolled out yet"
    current = state_of(list(workloads), drift)
    fix = ""
    if current == NOT_INSTALLED:
        fix = f"Apply {label} with the Pod network action."
    elif current == DRIFTED:
        fix = f"Re-apply {label} with the Pod network action: it puts back every field listed here."
    elif current == DEGRADED:
        fix = "Look at the named Pods' nodes (the image pull, the kubelet); re-apply if their spec was changed."
    return Addon(
        "pod-network",
        "Pod network",
        source,
        current,
        workloads,
        drift,
        unchecked,
        fix,
        reapply=current in (NOT_INSTALLED, DRIFTED, DEGRADED),
    )


def _kubeadm_addon(name: str, workload: Workload) -> Addon:
    current = state_of([workload])
    fix = KUBEADM_FIX.format(name=name.lower()) if current == NOT_INSTALLED else ""
    if current == DEGRADED:
        fix = "Look at the named Pods' nodes; on real machines a pod network must run first."
    return Addon(name.lower(), name, "kubeadm's addon phase", current, (workload,), fix=fix)


def read_health(cluster: Cluster) -> AddonsHealth:
    """Read the add-ons now (no cache): the API server's answer, or why there is none."""
    ready = preconditions.running(cluster)
    if not ready:
        return AddonsHealth(unavailable=str(ready))
    choice = applied_choice(cluster)
    objects: tuple[dict[str, Any], ...] = ()
    unreadable = ""  # why the pod network's objects cannot be had: CoreDNS and kube-proxy are read all the same
    if choice is not None:
        try:
            objects = applied_objects(cluster, choice)
        except (manifests.ManifestError, catalog.CatalogError) as exc:
            unreadable = f"What Kubeboard applied cannot be compared: {exc}"
    refs = [*_workloads_of(objects), COREDNS, KUBE_PROXY]
    try:
        state = kube_addons.read(cluster, refs, list(objects), describe=manifests.describe)
    except kube.KubeAPIError as exc:
        return AddonsHealth(error=str(exc), read_at=timezone.now())
    except Exception as exc:  # the section says so in words; the log has the traceback
        log.exception("reading the add-ons of cluster %s failed", cluster.name)
        return AddonsHealth(
            error=f"reading the add-ons failed ({type(exc).__name__}); see the web server's log",
            read_at=timezone.now(),
        )
    addons = (
        _pod_network(cluster, state, objects, choice, unreadable),
        _kubeadm_addon("CoreDNS", state.workloads[COREDNS]),
        _kubeadm_addon("kube-proxy", state.workloads[KUBE_PROXY]),
    )
    return AddonsHealth(addons, read_at=timezone.now())


def _cache_key(cluster: Cluster) -> str:
    # What is read depends on these: a changed choice, or an operation that started or ended (an
    # apply, a join, an upgrade), reads again at once instead of showing what was before it.
    newest = cluster.operations.order_by("-pk").values_list("pk", "status").first()
    parts = (
        newest,
        cluster.status,
        cluster.pod_network,
        cluster.pod_network_version,
        cluster.pod_network_applied,
        cluster.pod_network_registry,
    )
    # str(): a status reads the same from the database (a str) and from a model default (an enum).
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).hexdigest()
    return f"kubeboard:addons:{cluster.pk}:{digest}"


def health(cluster: Cluster) -> AddonsHealth:
    """The add-ons as last read, at most ``CACHE_SECONDS`` old."""
    key = _cache_key(cluster)
    found = cache.get(key)
    if found is None:
        found = read_health(cluster)
        cache.set(key, found, CACHE_SECONDS)
    return found

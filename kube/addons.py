"""The live state of a cluster's add-ons, read within a time budget: each workload's counts and
images, its Pods that are not ready, and the drift of the objects Kubeboard applied.

For the cluster page (clusters/addons.py decides which objects to read and what the state is
called): every request is a GET with a timeout cut to what is left of the budget, and no new
request starts once the budget is spent, so a slow or silent API server costs the page at most
``budget`` plus one connect, never the client's 30 s read timeout per object. Drift is
``kube.apply.drift`` (the fields Kubeboard applied that hold something else now), with the time
and operation of each manager that owns such a field now, from the object's managedFields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from kube import apply as kube_apply
from kube.client import APITarget, ClusterAPIError, ClusterUnreachable, connect, get_raw

BUDGET = 8.0  # seconds for one whole read
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 6.0
WORKLOAD_KINDS = {"DaemonSet": "daemonsets", "Deployment": "deployments"}
# The urllib3 pool of kube.client holds 4 connections: as many readers share it.
DRIFT_READERS = 4
MAX_PROBLEMS = 5  # Pods named per workload; the rest are counted
# A Pod not ready for less than this is starting (a rollout), not failing (the add-on is degraded).
STARTING = 180.0


class BudgetSpent(ClusterUnreachable):
    """The read's time ran out before this request could start."""


class Budget:
    """What is left of the read's time; each request's timeout never goes past it."""

    def __init__(self, seconds: float, *, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.deadline = time.monotonic() + seconds

    def timeout(self) -> tuple[float, float]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BudgetSpent(
                f"{self.what}: no complete answer within {self.seconds:.0f} s",
                hint="the API server is slow or overloaded; the page reads it again in a moment",
            )
        return min(CONNECT_TIMEOUT, left), min(READ_TIMEOUT, left)


def _get(client: kubernetes.client.ApiClient, path: str, budget: Budget) -> dict[str, Any] | None:
    """The object at ``path`` (None when the API server has none); other errors raise, typed by
    ``kube.client.connect``."""
    status, text = get_raw(client, path, timeout=budget.timeout())
    if status == 404:
        return None
    if status >= 400:
        raise ApiException(status=status, reason="", body=text)
    return json.loads(text)


# --- workloads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadRef:
    kind: str  # "DaemonSet", "Deployment"
    namespace: str
    name: str

    @property
    def description(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def path(self) -> str:
        ns, name = quote(self.namespace, safe=""), quote(self.name, safe="")
        return f"/apis/apps/v1/namespaces/{ns}/{WORKLOAD_KINDS[self.kind]}/{name}"


@dataclass(frozen=True)
class Workload:
    ref: WorkloadRef
    found: bool
    desired: int = 0
    ready: int = 0
    updated: int = 0
    # The controller has seen the newest spec and every Pod runs it (desired = updated).
    current: bool = False
    images: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # the Pods not ready, and why
    # Every Pod not ready was created less than STARTING seconds ago (or none exists yet).
    starting: bool = False

    @property
    def healthy(self) -> bool:
        return self.found and self.current and self.desired == self.ready

    @property
    def versions(self) -> tuple[str, ...]:
        """The tags of its images ("v0.28.9"), each once, in the order of the containers."""
        tags = []
        for image in self.images:
            name = image.split("@", 1)[0]
            tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
            if tag not in tags:
                tags.append(tag)
        return tuple(tags)


def _counts(kind: str, obj: dict[str, Any]) -> tuple[int, int, int, bool]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    observed = (status.get("observedGeneration") or 0) >= ((obj.get("metadata") or {}).get("generation") or 0)
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled") or 0
        ready, updated = status.get("numberReady") or 0, status.get("updatedNumberScheduled") or 0
        return desired, ready, updated, observed and updated == desired
    desired = spec["replicas"] if spec.get("replicas") is not None else 1  # the API server's default
    ready, updated = status.get("readyReplicas") or 0, status.get("updatedReplicas") or 0
    # Old replicas still running mean the rollout is not over, even with enough updated ones.
    return desired, ready, updated, observed and updated == desired and (status.get("replicas") or 0) == desired


def _pod_problem(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    reasons = []
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("PodScheduled", "Ready") and condition.get("status") != "True":
            reason = condition.get("reason") or condition.get("message") or ""
            reasons.append(f"{condition['type']}={condition.get('status')}" + (f" ({reason})" if reason else ""))
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            reasons.append(f"{container.get('name')} waiting: {waiting.get('reason', '')}".rstrip(": "))
    node = (pod.get("spec") or {}).get("nodeName") or "no node"
    name = (pod.get("metadata") or {}).get("name", "")
    return f"Pod {name} on {node} is {status.get('phase', 'Unknown')}: {'; '.join(reasons) or 'not ready'}"


def _instant(text: str) -> datetime | None:
    """An RFC 3339 time of the API server's ("2026-12-06T21:30:00Z")."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _age(pod: dict[str, Any]) -> float:
    """Seconds since the Pod was created (0 when the API server gave no time)."""
    created = _instant((pod.get("metadata") or {}).get("creationTimestamp") or "")
    return (datetime.now(UTC) - created).total_seconds() if created else 0.0


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def read_workload(client: kubernetes.client.ApiClient, ref: WorkloadRef, budget: Budget) -> Workload:
    obj = _get(client, ref.path, budget)
    if obj is None:
        return Workload(ref, found=False)
    desired, ready, updated, current = _counts(ref.kind, obj)
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    images = tuple(c.get("image", "") for c in template.get("containers") or [])
    problems: tuple[str, ...] = ()
    starting = False
    if ready < desired:
        labels = (((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
        selector = urlencode({"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))})
        pods = _get(client, f"/api/v1/namespaces/{quote(ref.namespace, safe='')}/pods?{selector}", budget) or {}
        unready = [p for p in pods.get("items") or [] if not _is_ready(p)]
        starting = all(_age(p) < STARTING for p in unready)
        lines = [_pod_problem(p) for p in unready]
        if len(lines) > MAX_PROBLEMS:
            lines = [*lines[:MAX_PROBLEMS], f"and {len(lines) - MAX_PROBLEMS} more Pods not ready"]
        problems = tuple(lines) or (f"{ready} of {desired} ready; no Pod of it is running yet",)
    return Workload(ref, True, desired, ready, updated, current, images, problems, starting)


# --- drift ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manager:
    """A managedFields entry that owns a drifted field: who, how (Update, Apply) and when."""

    name: str
    operation: str
    time: datetime | None  # when it last changed its fields (None when the API server wrote no time)


@dataclass(frozen=True)
class FieldDrift:
    path: str  # "spec.template.spec.containers[kube-flannel].image"
    wanted: Any
    found: Any
    managers: tuple[Manager, ...]  # none: the field was removed, nobody owns it now

    @property
    def wanted_text(self) -> str:
        return _shown(self.wanted)

    @property
    def found_text(self) -> str:
        return "(removed)" if self.found is None else _shown(self.found)

    @property
    def unowned(self) -> str:
        """Why no other manager is named: what a person reads instead of a name."""
        if self.found is None:
            return "nobody: the field was removed"
        return "no manager but Kubeboard owns it (an apply of an earlier choice, or managed fields cleared)"


def _shown(value: Any) -> str:
    """A field's value as a person reads it in a manifest: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class ObjectDrift:
    description: str  # "ConfigMap kube-flannel/kube-flannel-cfg"
    missing: bool  # deleted since Kubeboard applied it
    fields: tuple[FieldDrift, ...] = ()


def _managers(live: dict[str, Any], path: str) -> tuple[Manager, ...]:
    entries = (live.get("metadata") or {}).get("managedFields") or []
    found = [
        Manager(entry.get("manager", ""), entry.get("operation", ""), _instant(entry.get("time") or ""))
        for entry in entries
        if entry.get("manager") != kube_apply.FIELD_MANAGER
        # kube.apply's reading of a fieldsV1 tree, the one drift() names its managers with.
        and kube_apply._owns(entry.get("fieldsV1") or {}, path)
    ]
    return tuple(sorted(found, key=lambda m: (m.time or datetime.min.replace(tzinfo=UTC), m.name)))


def object_drift(wanted: dict[str, Any], live: dict[str, Any] | None, description: str) -> ObjectDrift | None:
    """How ``live`` differs from what Kubeboard applied (``wanted``); None when it does not."""
    if live is None:
        return ObjectDrift(description, missing=True)
    changes = kube_apply.drift(wanted, live)
    if not changes:
        return None
    return ObjectDrift(
        description,
        missing=False,
        fields=tuple(FieldDrift(c.path, c.wanted, c.found, _managers(live, c.path)) for c in changes),
    )


@dataclass(frozen=True)
class DriftRead:
    found: list[ObjectDrift]
    checked: int  # objects compared within the budget
    total: int

    @property
    def complete(self) -> bool:
        return self.checked == self.total


def read_drift(
    client: kubernetes.client.ApiClient,
    objects: Iterable[dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
    budget: Budget,
) -> DriftRead:
    """Each object compared with its live self, ``DRIFT_READERS`` at a time (Calico is 38 objects,
    its CRDs large); the objects not read when the budget runs out are counted as not checked."""
    objects = list(objects)
    discovery = kube_apply.Discovery(client)
    # Each group/version asked once, here, before the readers share the answers.
    for api_version, kind in dict.fromkeys((o["apiVersion"], o["kind"]) for o in objects):
        budget.timeout()  # discovery's own GETs use the client's timeouts: none starts past the budget
        discovery.resource(api_version, kind)

    def compare(obj: dict[str, Any]) -> ObjectDrift | None:
        try:
            path = discovery.path(obj)
        except ClusterAPIError as exc:
            if exc.status != 404:
                raise
            live = None  # its kind is served no more (the CRD that defined it was deleted)
        else:
            live = _get(client, path, budget)
        return object_drift(obj, live, describe(obj))

    found, checked = [], 0
    with ThreadPoolExecutor(max_workers=DRIFT_READERS) as pool:
        for future in [pool.submit(compare, obj) for obj in objects]:
            try:
                drifted = future.result()
            except BudgetSpent:
                continue
            checked += 1
            if drifted is not None:
                found.append(drifted)
    return DriftRead(found, checked, len(objects))


# --- the whole read ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddonsState:
    workloads: dict[WorkloadRef, Workload]
    drift: DriftRead


def read(
    target: APITarget,
    workloads: Iterable[WorkloadRef],
    applied: list[dict[str, Any]],
    *,
    describe: Callable[[dict[str, Any]], str],
    budget: float | None = None,
) -> AddonsState:
    """Each workload's state, and the drift of ``applied`` (the objects Kubeboard applies, as it
    applies them), in one connection and within ``budget`` seconds; raises ``KubeAPIError``
    (``BudgetSpent`` when the workloads themselves could not be read in time)."""
    limit = Budget(BUDGET if budget is None else budget, what=f"reading the add-ons of cluster {target.name}")
    with connect(target, "read the add-ons") as client:
        states = {ref: read_workload(client, ref, limit) for ref in workloads}
        drift = read_drift(client, applied, describe, limit) if applied else DriftRead([], 0, 0)
    return AddonsState(states, drift)

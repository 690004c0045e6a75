"""Server-side apply of a list of objects, the rollout wait, and drift read from managed fields.

Generic mechanics (no add-on knowledge; that is addons/): each object is sent as
``PATCH …?fieldManager=kubeboard&force=true`` with ``application/apply-patch+yaml``, so the API
server records Kubeboard as the manager of exactly the fields it sent, leaves fields others own
alone, and answers an unchanged object without a new resourceVersion (re-applying is a no-op).
Resource paths come from the API server's discovery, asked once per group/version.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import kubernetes.client

from kube.client import ClusterAPIError, get_raw

FIELD_MANAGER = "kubeboard"


@dataclass(frozen=True)
class Resource:
    plural: str
    namespaced: bool


def _call(client: kubernetes.client.ApiClient, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    method, url, headers, body, post = client.param_serialize(
        method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
    )
    response = client.call_api(method, url, headers, body, post, _request_timeout=(5.0, 60.0))
    data = response.read()
    if response.status >= 400:
        # With the body: kube.client.translate shows the API server's message (a 422's invalid
        # field, a 409's conflict), not only "Unprocessable Entity".
        raise kubernetes.client.exceptions.ApiException(
            status=response.status, reason=response.reason, body=data.decode("utf-8", errors="replace")
        )
    return json.loads(data) if data else None


class Discovery:
    """apiVersion + kind -> resource path, read from the API server per group/version on demand."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client
        self._known: dict[str, dict[str, Resource]] = {}

    def resource(self, api_version: str, kind: str, *, fresh: bool = False) -> Resource | None:
        if fresh or api_version not in self._known:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            status, text = get_raw(self.client, path)
            found: dict[str, Resource] = {}
            if status == 200:
                for item in json.loads(text).get("resources", []):
                    if "/" not in item["name"]:
                        found[item["kind"]] = Resource(item["name"], bool(item.get("namespaced")))
            self._known[api_version] = found
        return self._known[api_version].get(kind)

    def path(self, obj: dict[str, Any], *, wait: float = 0.0) -> str:
        """The object's URL path; a kind a CRD of the same apply just created is waited for."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        deadline = time.monotonic() + wait
        resource = self.resource(api_version, kind)
        while resource is None and time.monotonic() < deadline:
            time.sleep(1)
            resource = self.resource(api_version, kind, fresh=True)
        if resource is None:
            raise ClusterAPIError(
                f"the API server serves no {kind} in {api_version}",
                status=404,
                hint="apply the CustomResourceDefinition that defines it first, or check the apiVersion",
            )
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        metadata = obj.get("metadata") or {}
        name = quote(metadata["name"], safe="")
        if resource.namespaced:
            namespace = quote(metadata.get("namespace") or "default", safe="")
            return f"{base}/namespaces/{namespace}/{resource.plural}/{name}"
        return f"{base}/{resource.plural}/{name}"


@dataclass
class Applied:
    description: str
    action: str  # "created", "configured", "unchanged"
    resource_version: str
    path: str


def get_object(client: kubernetes.client.ApiClient, path: str) -> dict[str, Any] | None:
    try:
        return _call(client, "GET", path)
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def apply(
    client: kubernetes.client.ApiClient,
    objects: Iterable[dict[str, Any]],
    *,
    describe: Callable[[dict[str, Any]], str],
    on_applied: Callable[[Applied], None] = lambda applied: None,
    discovery: Discovery | None = None,
) -> list[Applied]:
    """Server-side apply every object in order, reporting each as it is done."""
    discovery = discovery or Discovery(client)
    done = []
    for obj in objects:
        path = discovery.path(obj, wait=30.0)
        before = get_object(client, path)
        query = urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
        after = _call(client, "PATCH", f"{path}?{query}", body=obj, content_type="application/apply-patch+yaml")
        version = after["metadata"].get("resourceVersion", "")
        if before is None:
            action = "created"
        elif before["metadata"].get("resourceVersion") == version:
            action = "unchanged"
        else:
            action = "configured"
        applied = Applied(describe(obj), action, version, path)
        done.append(applied)
        on_applied(applied)
        if obj["kind"] == "CustomResourceDefinition":
            _wait_established(client, path)
    return done


def identity(discovery: Discovery, obj: dict[str, Any]) -> tuple[str, str, str, str]:
    """(API group, kind, namespace, name): the one object whatever version a manifest names it in
    (``policy/v1beta1`` and ``policy/v1`` are the same object), a namespaced object without a
    namespace in ``default`` as the API server puts it."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    group = api_version.rpartition("/")[0]
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or ""
    resource = discovery.resource(api_version, kind)
    if resource is not None:
        namespace = (namespace or "default") if resource.namespaced else ""
    return group, kind, namespace, metadata["name"]


def _applied_by_kubeboard(live: dict[str, Any]) -> bool:
    return any(
        entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
        for entry in (live.get("metadata") or {}).get("managedFields") or []
    )


def prune(
    client: kubernetes.client.ApiClient,
    objects: Iterable[dict[str, Any]],
    *,
    describe: Callable[[dict[str, Any]], str],
    on_pruned: Callable[[Applied], None] = lambda pruned: None,
    discovery: Discovery | None = None,
) -> list[Applied]:
    """Delete each of ``objects`` (identities: apiVersion, kind, metadata) that Kubeboard applied.

    The caller says which objects are stale (applied before, not wanted now); here each is
    deleted only if the live object still has Kubeboard's server-side apply among its managers,
    and only that very object (a precondition on its uid), its dependents in the background.
    Actions: ``deleted``; ``gone`` (not there, or its kind no longer served); ``kept`` (no longer
    Kubeboard's: only other managers own it).
    """
    discovery = discovery or Discovery(client)
    done = []
    for obj in objects:
        action, version, path = "gone", "", ""
        if discovery.resource(obj["apiVersion"], obj["kind"]) is not None:
            path = discovery.path(obj)
            live = get_object(client, path)
            if live is not None and not _applied_by_kubeboard(live):
                action = "kept"
            elif live is not None:
                body = {"propagationPolicy": "Background", "preconditions": {"uid": live["metadata"]["uid"]}}
                try:
                    _call(client, "DELETE", path, body=body, content_type="application/json")
                    action, version = "deleted", live["metadata"].get("resourceVersion", "")
                except kubernetes.client.exceptions.ApiException as exc:
                    if exc.status == 404:  # deleted meanwhile
                        action = "gone"
                    elif exc.status == 409:  # the uid changed: another object of that name now, not ours
                        action = "kept"
                    else:
                        raise
        pruned = Applied(describe(obj), action, version, path)
        done.append(pruned)
        on_pruned(pruned)
    return done


def _wait_established(client: kubernetes.client.ApiClient, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = get_object(client, path) or {}
        conditions = (crd.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        time.sleep(0.5)


# --- drift ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    path: str  # "spec.template.spec.containers[kube-flannel].image"
    wanted: Any
    found: Any
    managers: tuple[str, ...]  # who owns that field now (managedFields), "" when nobody


def _index(items: list[Any]) -> dict[str, Any] | None:
    """List items keyed by their name (containers, env, volumes), when every item has one."""
    if items and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        return {i["name"]: i for i in items}
    return None


def differences(wanted: Any, found: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Where ``found`` (the live object) differs from ``wanted`` in the fields ``wanted`` sets.

    Fields the API server or controllers add (defaults, status) are not differences; a list of
    named items is compared by name, any other list item by item.
    """
    if isinstance(wanted, dict):
        if not isinstance(found, dict):
            return [(path, wanted, found)]
        out = []
        for key, value in wanted.items():
            out += differences(value, found.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(wanted, list):
        if not isinstance(found, list):
            return [(path, wanted, found)]
        named_wanted, named_found = _index(wanted), _index(found)
        if named_wanted is not None and named_found is not None:
            out = []
            for name, value in named_wanted.items():
                out += differences(value, named_found.get(name), f"{path}[{name}]")
            return out
        if len(wanted) != len(found):
            return [(path, wanted, found)]
        out = []
        for index, (w, f) in enumerate(zip(wanted, found, strict=True)):
            out += differences(w, f, f"{path}[{index}]")
        return out
    # Go's omitempty: the API server stores no false, 0, "" or empty value (e.g. a CRD's
    # preserveUnknownFields: false), and null reads back as empty.
    if found is None and wanted in (False, 0, "", None) and not isinstance(wanted, float):
        return []
    if wanted != found and not (wanted is None and found in ({}, [], "")):
        # The API server keeps numbers and booleans typed; YAML may have quoted them.
        if found is not None and str(wanted) == str(found) and not isinstance(wanted, bool):
            return []
        return [(path, wanted, found)]
    return []


def _owns(fields: dict[str, Any], path: str) -> bool:
    """Whether a managedFields fieldsV1 tree names the dotted ``path`` (items by name).

    A key may itself hold dots (``data.net-conf.json``), so at each level the longest run of
    path words that is a field of that level is taken.
    """
    tokens = re.findall(r"\[([^\]]*)\]|([^.\[]+)", path)
    node: Any = fields
    index = 0
    while index < len(tokens):
        if not isinstance(node, dict):
            return False
        item, word = tokens[index]
        if item:
            node = next((v for k, v in node.items() if k.startswith("k:") and f'"name":"{item}"' in k), None)
            index += 1
        else:
            end = index + 1
            while end < len(tokens) and not tokens[end][0]:
                end += 1
            for stop in range(end, index, -1):
                candidate = node.get("f:" + ".".join(t[1] for t in tokens[index:stop]))
                if candidate is not None:
                    node, index = candidate, stop
                    break
            else:
                return False
        if node is None:
            return False
    return True


def drift(wanted: dict[str, Any], live: dict[str, Any]) -> list[Drift]:
    """The fields Kubeboard applied that hold something else now, with who owns them now."""
    found = []
    for path, want, have in differences(
        {k: v for k, v in wanted.items() if k not in ("apiVersion", "kind", "status")}, live
    ):
        if path.startswith("metadata.") and path.split(".")[1] in ("name", "namespace"):
            continue
        managers = tuple(
            sorted(
                entry.get("manager", "")
                for entry in (live.get("metadata") or {}).get("managedFields") or []
                if _owns(entry.get("fieldsV1") or {}, path) and entry.get("manager") != FIELD_MANAGER
            )
        )
        found.append(Drift(path, want, have, managers))
    return found


# --- rollout -------------------------------------------------------------------------------------


@dataclass
class Rollout:
    description: str
    desired: int
    ready: int
    updated: int
    ok: bool
    problems: list[str] = field(default_factory=list)


def _events_for(client: kubernetes.client.ApiClient, namespace: str, name: str) -> list[str]:
    core = kubernetes.client.CoreV1Api(client)
    items = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    items = sorted(items, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return [f"{e.reason}: {e.message}" for e in items[-3:] if e.type != "Normal"]


def _pod_problem(client: kubernetes.client.ApiClient, pod: Any) -> str:
    status = pod.status
    reasons = []
    for condition in status.conditions or []:
        if condition.status != "True" and condition.type in ("Ready", "PodScheduled", "ContainersReady"):
            reasons.append(
                f"{condition.type}={condition.status}" + (f" ({condition.reason})" if condition.reason else "")
            )
    for container in (status.init_container_statuses or []) + (status.container_statuses or []):
        state = container.state
        if state and state.waiting:
            reasons.append(f"{container.name} waiting: {state.waiting.reason} {state.waiting.message or ''}".strip())
        elif state and state.terminated and state.terminated.exit_code:
            reasons.append(f"{container.name} exited {state.terminated.exit_code} ({state.terminated.reason})")
    reasons += _events_for(client, pod.metadata.namespace, pod.metadata.name)
    node = pod.spec.node_name or "no node"
    return f"Pod {pod.metadata.name} on {node} is {status.phase}: {'; '.join(reasons) or 'not ready'}"


def _selector(match_labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((match_labels or {}).items()))


def _schedulable_nodes(client: kubernetes.client.ApiClient) -> dict[str, Any]:
    nodes = kubernetes.client.CoreV1Api(client).list_node().items
    return {n.metadata.name: n for n in nodes if not n.spec.unschedulable}


def _tolerated(node: Any, tolerations: list[Any]) -> bool:
    for taint in node.spec.taints or []:
        if taint.effect not in ("NoSchedule", "NoExecute"):
            continue
        if not any(
            (t.operator == "Exists" and (not t.key or t.key == taint.key))
            or (t.key == taint.key and (t.value or "") == (taint.value or ""))
            for t in tolerations or []
            if not t.effect or t.effect == taint.effect
        ):
            return False
    return True


def daemonset_rollout(client: kubernetes.client.ApiClient, namespace: str, name: str) -> Rollout:
    """desired = ready = updated, and a ready Pod on every schedulable node the DaemonSet tolerates."""
    apps = kubernetes.client.AppsV1Api(client)
    ds = apps.read_namespaced_daemon_set(name, namespace)
    status = ds.status
    desired, ready, updated = status.desired_number_scheduled, status.number_ready, status.updated_number_scheduled or 0
    observed = (status.observed_generation or 0) >= (ds.metadata.generation or 0)
    problems: list[str] = []
    pods = (
        kubernetes.client.CoreV1Api(client)
        .list_namespaced_pod(namespace, label_selector=_selector(ds.spec.selector.match_labels))
        .items
    )
    ready_on = {
        p.spec.node_name
        for p in pods
        if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        and p.metadata.deletion_timestamp is None
    }
    tolerations = ds.spec.template.spec.tolerations or []
    for node_name, node in sorted(_schedulable_nodes(client).items()):
        if node_name in ready_on or not _tolerated(node, tolerations):
            continue
        here = [p for p in pods if p.spec.node_name == node_name]
        if here:
            problems += [_pod_problem(client, p) for p in here]
        else:
            problems.append(f"node {node_name} has no Pod of {namespace}/{name} yet")
    ok = observed and desired == ready == updated and not problems
    return Rollout(f"DaemonSet {namespace}/{name}", desired, ready, updated, ok, problems)


def deployment_rollout(client: kubernetes.client.ApiClient, namespace: str, name: str) -> Rollout:
    apps = kubernetes.client.AppsV1Api(client)
    deployment = apps.read_namespaced_deployment(name, namespace)
    status = deployment.status
    desired = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    ready, updated = status.ready_replicas or 0, status.updated_replicas or 0
    observed = (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
    ok = observed and desired == ready == updated and (status.replicas or 0) == desired
    problems = []
    if not ok:
        pods = (
            kubernetes.client.CoreV1Api(client)
            .list_namespaced_pod(namespace, label_selector=_selector(deployment.spec.selector.match_labels))
            .items
        )
        problems = [
            _pod_problem(client, p)
            for p in pods
            if not any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ] or [f"{ready} of {desired} replicas ready, {updated} updated"]
    return Rollout(f"Deployment {namespace}/{name}", desired, ready, updated, ok, problems)


def rollout(client: kubernetes.client.ApiClient, obj: dict[str, Any]) -> Rollout | None:
    """The rollout of one applied object, for the kinds that roll out (else None)."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    if obj["kind"] == "DaemonSet":
        return daemonset_rollout(client, namespace, metadata["name"])
    if obj["kind"] == "Deployment":
        return deployment_rollout(client, namespace, metadata["name"])
    return None

"""Nodes and their Pods through the API: the Ready check, the node list, versions as the API
server sees them, cordon/drain/uncordon, Node deletion."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from core.formatting import duration_words
from core.waiting import WaitTimedOut, wait_until
from kube.client import APITarget, ClusterAPIError, connect
from kubeadm.components import CONTROL_PLANE_COMPONENTS
from kubeadm.node_conditions import MAX_CONDITIONS, condition_row

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
DRAIN_TIMEOUT = 300


def is_ready(node) -> bool:
    """The Node's Ready condition is True (a Node without conditions is not Ready)."""
    for condition in (node.status.conditions or []) if node.status else []:
        if condition.type == "Ready":
            return condition.status == "True"
    return False


def node_row(node) -> dict:
    """A Node as the cluster page and the read-back show it (plain values, JSON-ready)."""
    labels = node.metadata.labels or {}
    roles = sorted(key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/"))
    addresses = {a.type: a.address for a in (node.status.addresses or [])} if node.status else {}
    info = node.status.node_info if node.status else None
    return {
        "name": node.metadata.name,
        "ready": is_ready(node),
        "roles": roles,
        "kubelet_version": info.kubelet_version if info else "",
        "internal_ip": addresses.get("InternalIP", ""),
        # Cordoned (kubectl cordon): no new Pods are scheduled there.
        "unschedulable": bool(node.spec.unschedulable) if node.spec else False,
        "created": node.metadata.creation_timestamp.isoformat() if node.metadata.creation_timestamp else "",
        # Why it is (not) Ready, bounded (kubeadm.node_conditions explains them): stored with the
        # rest, so a page explains a NotReady Node without asking the API server again.
        "conditions": [
            condition_row(c.type, c.status, c.reason, c.message, c.last_transition_time, c.last_heartbeat_time)
            for c in ((node.status.conditions or []) if node.status else [])[:MAX_CONDITIONS]
        ],
    }


def list_nodes(target: APITarget) -> list[dict]:
    """Every Node as a ``node_row``, by name."""
    with connect(target, "list Nodes") as client:
        items = kubernetes.client.CoreV1Api(client).list_node().items
    return sorted((node_row(item) for item in items), key=lambda row: row["name"])


def node_ready(target: APITarget, node_name: str, *, user: Any = None) -> bool | None:
    """Whether the API server reports the Node Ready; None when no such Node is registered."""
    try:
        with connect(target, f"get Node {node_name}", user=user) as client:
            node = kubernetes.client.CoreV1Api(client).read_node(node_name)
    except ClusterAPIError as exc:
        if exc.status == 404:
            return None
        raise
    return is_ready(node)


@dataclass
class NodeState:
    name: str
    ready: bool
    control_plane: bool
    kubelet_version: str
    unschedulable: bool
    # component -> image of its static Pod on this node (from the mirror Pods kubeadm labels).
    components: dict[str, str] = field(default_factory=dict)


@dataclass
class ClusterState:
    server_version: str
    nodes: dict[str, NodeState]
    kube_proxy_image: str = ""
    coredns_image: str = ""


def cluster_state(target: APITarget) -> ClusterState:
    """Versions as the API server sees them: its own, each kubelet's, each static Pod's image."""
    with connect(target, "read versions") as client:
        core = kubernetes.client.CoreV1Api(client)
        version = kubernetes.client.VersionApi(client).get_code().git_version
        nodes = {}
        for item in core.list_node().items:
            labels = item.metadata.labels or {}
            info = item.status.node_info if item.status else None
            nodes[item.metadata.name] = NodeState(
                name=item.metadata.name,
                ready=is_ready(item),
                control_plane=CONTROL_PLANE_LABEL in labels,
                kubelet_version=info.kubelet_version if info else "",
                unschedulable=bool(item.spec.unschedulable) if item.spec else False,
            )
        for pod in core.list_namespaced_pod("kube-system", label_selector="tier=control-plane").items:
            component = (pod.metadata.labels or {}).get("component", "")
            node = nodes.get(pod.spec.node_name or "")
            if node is not None and component in CONTROL_PLANE_COMPONENTS and pod.spec.containers:
                node.components[component] = pod.spec.containers[0].image
        proxy = coredns = ""
        try:
            daemon_set = kubernetes.client.AppsV1Api(client).read_namespaced_daemon_set("kube-proxy", "kube-system")
            proxy = daemon_set.spec.template.spec.containers[0].image
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            deployment = kubernetes.client.AppsV1Api(client).read_namespaced_deployment("coredns", "kube-system")
            coredns = deployment.spec.template.spec.containers[0].image
        except ApiException as exc:
            if exc.status != 404:
                raise
    return ClusterState(server_version=version, nodes=nodes, kube_proxy_image=proxy, coredns_image=coredns)


def set_unschedulable(target: APITarget, name: str, value: bool) -> bool:
    """Cordon (True) or uncordon (False); False when there is no such Node."""
    with connect(target, f"{'cordon' if value else 'uncordon'} {name}") as client:
        try:
            kubernetes.client.CoreV1Api(client).patch_node(name, {"spec": {"unschedulable": value or None}})
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
    return True


def _evictable(pod) -> bool:
    if MIRROR_ANNOTATION in (pod.metadata.annotations or {}):
        return False  # a static Pod: the kubelet owns it, eviction cannot remove it
    if any(ref.kind == "DaemonSet" for ref in pod.metadata.owner_references or []):
        return False  # its controller would put it back at once (kubectl drain --ignore-daemonsets)
    return pod.status is None or pod.status.phase not in ("Succeeded", "Failed")


def drain(
    target: APITarget,
    name: str,
    *,
    log: Callable[[str], None],
    cancel: threading.Event | None = None,
    timeout: float = DRAIN_TIMEOUT,
) -> int:
    """``kubectl drain --ignore-daemonsets --delete-emptydir-data``: cordon, evict every Pod that
    is neither a static Pod nor a DaemonSet's (retrying while a PodDisruptionBudget says no),
    and wait until they are gone. Returns how many Pods were evicted. Raises ``TimeoutError``
    naming the Pods left, ``core.waiting.WaitCancelled`` once ``cancel`` is set."""
    if not set_unschedulable(target, name, True):
        log(f"There is no Node {name} in the API server: nothing to drain.")
        return 0
    log(f"Cordoned {name}: no new Pods are scheduled there.")
    evicted: set[tuple[str, str]] = set()
    left: list = []
    blocked: list[str] = []

    def evict_round() -> int | None:
        nonlocal left, blocked
        with connect(target, f"drain {name}") as client:
            core = kubernetes.client.CoreV1Api(client)
            pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items
            left = [p for p in pods if _evictable(p)]
            blocked = []
            for pod in left:
                key = (pod.metadata.namespace, pod.metadata.name)
                if key in evicted:
                    continue
                body = kubernetes.client.V1Eviction(
                    metadata=kubernetes.client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)
                )
                try:
                    core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, body)
                    evicted.add(key)
                    log(f"Evicting pod {pod.metadata.namespace}/{pod.metadata.name}")
                except ApiException as exc:
                    if exc.status == 404:
                        evicted.add(key)
                    elif exc.status == 429:
                        blocked.append(f"{key[0]}/{key[1]}")
                    else:
                        raise
        return None if left else len(evicted)

    try:
        count = wait_until(evict_round, timeout=timeout, cancel=cancel)
    except WaitTimedOut:
        names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in left[:10])
        why = f" (a PodDisruptionBudget refuses: {', '.join(blocked[:5])})" if blocked else ""
        raise TimeoutError(
            f"{name} still runs {len(left)} pod(s) after {duration_words(timeout)}: {names}{why}"
        ) from None
    log(f"Drained {name}: {count} pod(s) evicted (static and DaemonSet pods stay).")
    return count


def delete_node(target: APITarget, name: str) -> bool:
    """Delete the Node object; False when there was none."""
    with connect(target, f"delete Node {name}") as client:
        try:
            kubernetes.client.CoreV1Api(client).delete_node(name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
    return True

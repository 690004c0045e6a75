"""The Kubernetes API calls day-two work needs: node versions, cordon/drain/uncordon, Node
deletion, kubeadm's ConfigMaps. Every call goes through ``clusters.kubeapi.connect`` (Kubeboard's
own short-lived client certificate, the connection guard, typed errors)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from clusters import kubeapi
from core.formatting import duration_words

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CONTROL_PLANE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
DRAIN_TIMEOUT = 300


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


def _ready(node) -> bool:
    for condition in (node.status.conditions or []) if node.status else []:
        if condition.type == "Ready":
            return condition.status == "True"
    return False


def cluster_state(cluster) -> ClusterState:
    """Versions as the API server sees them: its own, each kubelet's, each static Pod's image."""
    with kubeapi.connect(cluster, "read versions") as client:
        core = kubernetes.client.CoreV1Api(client)
        version = kubernetes.client.VersionApi(client).get_code().git_version
        nodes = {}
        for item in core.list_node().items:
            labels = item.metadata.labels or {}
            info = item.status.node_info if item.status else None
            nodes[item.metadata.name] = NodeState(
                name=item.metadata.name,
                ready=_ready(item),
                control_plane="node-role.kubernetes.io/control-plane" in labels,
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


def set_unschedulable(cluster, name: str, value: bool) -> bool:
    """Cordon (True) or uncordon (False); False when there is no such Node."""
    with kubeapi.connect(cluster, f"{'cordon' if value else 'uncordon'} {name}") as client:
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
    cluster,
    name: str,
    *,
    log: Callable[[str], None],
    cancelled: Callable[[float], bool],
    timeout: float = DRAIN_TIMEOUT,
) -> int:
    """``kubectl drain --ignore-daemonsets --delete-emptydir-data``: cordon, evict every Pod that
    is neither a static Pod nor a DaemonSet's (retrying while a PodDisruptionBudget says no),
    and wait until they are gone. Returns how many Pods were evicted. ``cancelled(wait)`` sleeps
    and says whether to stop."""
    if not set_unschedulable(cluster, name, True):
        log(f"There is no Node {name} in the API server: nothing to drain.")
        return 0
    log(f"Cordoned {name}: no new Pods are scheduled there.")
    deadline = time.monotonic() + timeout
    evicted: set[tuple[str, str]] = set()
    while True:
        with kubeapi.connect(cluster, f"drain {name}") as client:
            core = kubernetes.client.CoreV1Api(client)
            pods = [p for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items]
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
        if not left:
            log(f"Drained {name}: {len(evicted)} pod(s) evicted (static and DaemonSet pods stay).")
            return len(evicted)
        if time.monotonic() > deadline:
            names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in left[:10])
            why = f" (a PodDisruptionBudget refuses: {', '.join(blocked[:5])})" if blocked else ""
            raise TimeoutError(f"{name} still runs {len(left)} pod(s) after {duration_words(timeout)}: {names}{why}")
        if cancelled(2.0):
            raise InterruptedError("cancelled")


def drain_phase_node(ctx) -> None:
    """``drain`` of a phase's node (upgrade, reset), its outcomes as the phase's: a cancel
    cancels; Pods still there at the deadline, or an API error, fail it with what to do."""
    from operations.runner import OperationCancelled, PhaseError

    try:
        drain(ctx.cluster, ctx.node.name, log=ctx.log, cancelled=ctx.cancel_event.wait)
    except InterruptedError:
        raise OperationCancelled("cancelled while draining") from None
    except TimeoutError as exc:
        raise PhaseError(
            str(exc), hint="evict or delete those pods by hand (or relax the budget), then resume"
        ) from None
    except kubeapi.KubeAPIError as exc:
        raise PhaseError(str(exc), hint=exc.hint) from None


def delete_node(cluster, name: str) -> bool:
    with kubeapi.connect(cluster, f"delete Node {name}") as client:
        try:
            kubernetes.client.CoreV1Api(client).delete_node(name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
    return True


def config_map(cluster, namespace: str, name: str) -> dict[str, str] | None:
    with kubeapi.connect(cluster, f"read ConfigMap {namespace}/{name}") as client:
        try:
            item = kubernetes.client.CoreV1Api(client).read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    return dict(item.data or {})


def patch_config_map(cluster, namespace: str, name: str, data: dict[str, str]) -> None:
    with kubeapi.connect(cluster, f"update ConfigMap {namespace}/{name}") as client:
        kubernetes.client.CoreV1Api(client).patch_namespaced_config_map(name, namespace, {"data": data})

"""Why a Node is not Ready, or under pressure, in words, with the fix: read from its conditions.

``kubectl get nodes`` says "NotReady"; the reason is in the Node's conditions, in text the
kubelet and the node lifecycle controller write. Every rule here matches that text as Kubernetes
v1.37.2 writes it (the sources are named at each rule), so a person reads "the pod network is not
installed" and what to do, not only "NotReady":

* the kubelet (pkg/kubelet/nodestatus/setters.go ``ReadyCondition``): Ready=False, reason
  ``KubeletNotReady``, its message the aggregated errors of the runtime, network and storage
  checks, e.g. "container runtime network not ready: NetworkReady=false
  reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"
  (pkg/kubelet/kubelet.go ``updateRuntimeUp``; the inner words are containerd's CRI
  ``Status``), "container runtime is down", "PLEG is not healthy: ..." (pkg/kubelet/runtime.go);
  several at once are joined as "[a, b]";
* the kubelet's pressure conditions: MemoryPressure, DiskPressure, PIDPressure (True with
  ``KubeletHasInsufficientMemory``, ``KubeletHasDiskPressure``, ``KubeletHasInsufficientPID``);
* the node lifecycle controller (pkg/controller/nodelifecycle/node_lifecycle_controller.go),
  when the kubelet stops renewing its lease and posting status for the grace period: every
  condition it owns goes Unknown, reason ``NodeStatusUnknown``, "Kubelet stopped posting node
  status."; ``NodeStatusNeverUpdated``, "Kubelet never posted node status.", when it never did;
* NetworkUnavailable, which the kubelet never sets: a network add-on (Calico) or a cloud route
  controller does.

An expired kubelet client certificate shows in no condition: the API server refuses the kubelet
(x509, "Unauthorized"), so it cannot post, and the Node goes Unknown. It is named when the caller
knows the certificate expired (``kubelet_certificate_expired``) or when a message says x509 or
Unauthorized; otherwise it is one of the causes the "stopped posting" fix tells how to check.

Pure: no Django, no I/O. ``condition_row`` turns one API condition into the small JSON-ready dict
Kubeboard stores with the Node (clusters.nodestatus); ``explain`` reads those dicts back, and
never raises on odd ones (a stored row may be anything JSON holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

READY = "Ready"
MEMORY_PRESSURE = "MemoryPressure"
DISK_PRESSURE = "DiskPressure"
PID_PRESSURE = "PIDPressure"
NETWORK_UNAVAILABLE = "NetworkUnavailable"
# The status of each condition when all is well; the other statuses of these are problems.
HEALTHY_STATUS = {
    READY: "True",
    MEMORY_PRESSURE: "False",
    DISK_PRESSURE: "False",
    PID_PRESSURE: "False",
    NETWORK_UNAVAILABLE: "False",
}

# Bounds of what is stored and shown: a condition's message is free text that any controller
# with the right to patch Node status may set, of any length.
MESSAGE_MAX_CHARS = 1000
REASON_MAX_CHARS = 128
TYPE_MAX_CHARS = 128
MAX_CONDITIONS = 32

# The place a fix sends a person to; the node page links these words to the cluster page's part.
POD_NETWORK_PLACE = "the Pod network part of the cluster page"

# Words in the Ready message, lower case (sources in the module docstring).
_NETWORK_WORDS = (
    "container runtime network not ready",
    "networkpluginnotready",
    "cni plugin not initialized",
    "network plugin is not ready",  # dockershim and older CRI-O
    "cni config uninitialized",
    "no networks found in /etc/cni/net.d",  # CRI-O
)
_RUNTIME_WORDS = (
    "container runtime is down",
    "container runtime not ready",
    "container runtime status check may not have completed yet",
    "pleg is not healthy",
    "network state unknown",  # the kubelet has not had an answer from the runtime yet
)
_CERTIFICATE_WORDS = ("x509", "certificate has expired", "unauthorized", "certificate signed by unknown authority")
_SHUTDOWN_WORDS = ("node is shutting down",)
_CAPACITY_WORDS = ("missing node capacity",)


@dataclass(frozen=True)
class Explanation:
    code: str  # stable: "pod-network", "kubelet-stopped", "kubelet-certificate", "disk-pressure", ...
    severity: str  # "problem" (the Node cannot run Pods as it should), "warning", or "note"
    summary: str  # a few words for the cluster page's node row
    meaning: str  # what the condition means, in a sentence or two
    fix: str  # what to do
    commands: tuple[str, ...] = ()  # what to run (on the machine, or kubectl), one per line
    condition: str = ""  # the condition type it was read from; "" for a cordoned Node
    status: str = ""
    reason: str = ""
    message: str = ""  # the condition's own message, bounded
    since: str = ""  # lastTransitionTime, ISO 8601
    heartbeat: str = ""  # lastHeartbeatTime when the condition is Unknown: when the kubelet last posted


def bounded(value: Any, limit: int) -> str:
    """``value`` as text of at most ``limit`` characters (cut with an ellipsis); "" for None."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return bounded(value, 64)


def condition_row(
    type: Any, status: Any, reason: Any = "", message: Any = "", last_transition: Any = None, last_heartbeat: Any = None
) -> dict:
    """One Node condition as Kubeboard stores it: bounded text, ISO times.

    The heartbeat is kept only for an Unknown condition, where it says when the kubelet last
    posted (the node lifecycle controller leaves it as the kubelet wrote it). A healthy kubelet
    moves it at every status report, so storing it would make every read of the Nodes look like
    a change, and redraw every open cluster page for nothing."""
    row = {
        "type": bounded(type, TYPE_MAX_CHARS),
        "status": bounded(status, 16),
        "reason": bounded(reason, REASON_MAX_CHARS),
        "message": bounded(message, MESSAGE_MAX_CHARS),
        "since": _iso(last_transition),
    }
    if row["status"] == "Unknown" and last_heartbeat is not None:
        row["heartbeat"] = _iso(last_heartbeat)
    return row


def _conditions(row: Mapping) -> list[dict]:
    """The stored conditions of a node row, each with every key as bounded text; junk skipped."""
    raw = row.get("conditions") if isinstance(row, Mapping) else None
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        return []
    found = []
    for item in list(raw)[:MAX_CONDITIONS]:
        if not isinstance(item, Mapping):
            continue
        found.append(
            {
                "type": bounded(item.get("type"), TYPE_MAX_CHARS),
                "status": bounded(item.get("status"), 16),
                "reason": bounded(item.get("reason"), REASON_MAX_CHARS),
                "message": bounded(item.get("message"), MESSAGE_MAX_CHARS),
                "since": bounded(item.get("since"), 64),
                "heartbeat": bounded(item.get("heartbeat"), 64),
            }
        )
    return found


def conditions(row: Mapping) -> list[dict]:
    """The node row's conditions as shown: Ready first, then the rest in the kubelet's order,
    each with ``healthy`` (None for a type this module has no healthy status for)."""
    shown = []
    for item in _conditions(row):
        healthy = HEALTHY_STATUS.get(item["type"])
        shown.append({**item, "healthy": None if healthy is None else item["status"] == healthy})
    return sorted(shown, key=lambda item: item["type"] != READY)


def _has(message: str, words: Sequence[str]) -> bool:
    lower = message.lower()
    return any(word in lower for word in words)


def _from(item: dict) -> dict:
    return {
        "condition": item["type"],
        "status": item["status"],
        "reason": item["reason"],
        "message": item["message"],
        "since": item["since"],
        "heartbeat": item["heartbeat"],
    }


_KUBELET_LOGS = ("systemctl status kubelet", "journalctl -u kubelet -n 100 --no-pager")


def _pod_network(item: dict, name: str, pod_network: str) -> Explanation:
    if pod_network:
        fix = (
            f"Kubeboard rolled out {pod_network}, so its Pod on {name} is not running or not ready yet: "
            f"look at that Pod and its logs; the add-on writes its CNI configuration to /etc/cni/net.d "
            f"on the machine once it runs. Re-apply it from {POD_NETWORK_PLACE} if its objects were changed."
        )
    else:
        fix = (
            f"Install one from {POD_NETWORK_PLACE} (kubeadm installs none). If you installed one yourself, "
            f"its Pod on {name} is not running or not ready yet: look at that Pod and its logs."
        )
    return Explanation(
        "pod-network",
        "problem",
        "no pod network",
        "The container runtime reports its network not ready: no CNI plugin is configured on this machine, "
        "so the kubelet keeps the Node NotReady and no Pod here gets an address.",
        fix,
        (f"kubectl get pods -A -o wide --field-selector spec.nodeName={name}", "ls /etc/cni/net.d"),
        **_from(item),
    )


def _certificate(item: dict, name: str, endpoint: str, *, expired: str = "") -> Explanation:
    why = (
        f"The kubelet's client certificate expired {expired}: the API server refuses it"
        if expired
        else "The API server refuses the kubelet's credentials (x509 or Unauthorized)"
    )
    return Explanation(
        "kubelet-certificate",
        "problem",
        "kubelet certificate refused",
        f"{why}, so the kubelet cannot post the Node's status.",
        "The kubelet rotates its client certificate by itself only while it is valid; renew it as kubeadm's "
        f"troubleshooting guide does: on {name} move /etc/kubernetes/kubelet.conf and "
        "/var/lib/kubelet/pki/kubelet-client* aside; on a control-plane machine that holds "
        f"/etc/kubernetes/pki/ca.key run kubeadm kubeconfig user --org system:nodes --client-name system:node:{name} "
        f"> kubelet.conf and copy that file to /etc/kubernetes/kubelet.conf on {name}; restart the kubelet and "
        "wait for /var/lib/kubelet/pki/kubelet-client-current.pem; then point kubelet.conf's client-certificate "
        "and client-key at that file and restart the kubelet again, so that it keeps rotating. "
        + (f"Check too that the machine trusts the cluster's CA and reaches {endpoint}." if endpoint else ""),
        (
            "openssl x509 -noout -enddate -in /var/lib/kubelet/pki/kubelet-client-current.pem",
            "journalctl -u kubelet --no-pager | grep -E 'x509|Unauthorized' | tail -5",
        ),
        **_from(item),
    )


def _kubelet_stopped(item: dict, name: str, endpoint: str) -> Explanation:
    never = item["reason"] == "NodeStatusNeverUpdated"
    if never:
        # The controller writes the Node's creation as the heartbeat of a kubelet that never posted.
        item = {**item, "heartbeat": ""}
    reach = f"the control-plane endpoint {endpoint}" if endpoint else "the control-plane endpoint"
    return Explanation(
        "kubelet-never-posted" if never else "kubelet-stopped",
        "problem",
        "kubelet never posted status" if never else "kubelet not posting status",
        (
            "The kubelet registered the Node but never posted its status"
            if never
            else "The kubelet stopped posting the Node's status"
        )
        + ": it is not running, or it cannot reach the API server, or the API server refuses it. "
        "The control plane marked the Node Unknown after its grace period; Pods there are evicted after a while.",
        f"On {name}: check that the kubelet runs and read its log. If it runs, check that the machine reaches "
        f"{reach} (firewall, routes, DNS). If its log says x509 or Unauthorized, its client certificate "
        "expired or is not trusted: renew it (kubeadm's kubelet-client certificate rotation).",
        (*_KUBELET_LOGS, f"curl -sk https://{endpoint}/healthz" if endpoint else "curl -sk https://ENDPOINT/healthz"),
        **_from(item),
    )


def _not_ready(item: dict, name: str, pod_network: str, endpoint: str) -> Explanation:
    message = item["message"]
    if _has(message, _NETWORK_WORDS):
        return _pod_network(item, name, pod_network)
    if _has(message, _CERTIFICATE_WORDS):
        return _certificate(item, name, endpoint)
    if _has(message, _RUNTIME_WORDS):
        return Explanation(
            "container-runtime",
            "problem",
            "container runtime not ready",
            "The kubelet gets no healthy answer from the container runtime (containerd or CRI-O): it is "
            "down, still starting, or too slow to list its containers (PLEG).",
            f"On {name}: check that the container runtime runs and answers on its CRI socket; restart it if it "
            "hangs, then read the kubelet's log.",
            ("systemctl status containerd", "crictl info", *_KUBELET_LOGS),
            **_from(item),
        )
    if _has(message, _SHUTDOWN_WORDS):
        return Explanation(
            "shutting-down",
            "problem",
            "machine shutting down",
            "The kubelet saw the machine start to shut down (graceful node shutdown) and stopped taking Pods.",
            "Wait for the machine to come back, or start it again; the Node is Ready once its kubelet posts again.",
            **_from(item),
        )
    if _has(message, _CAPACITY_WORDS):
        return Explanation(
            "kubelet-starting",
            "warning",
            "kubelet starting",
            "The kubelet has not read the machine's resources (CPU, memory, Pods) yet; this passes within "
            "seconds of its start.",
            f"If it lasts, read the kubelet's log on {name}.",
            _KUBELET_LOGS,
            **_from(item),
        )
    return Explanation(
        "kubelet-not-ready",
        "problem",
        "kubelet not ready",
        "The kubelet reports the Node not ready; its message says why.",
        f"Read the kubelet's log on {name}.",
        _KUBELET_LOGS,
        **_from(item),
    )


_PRESSURE = {
    MEMORY_PRESSURE: (
        "memory-pressure",
        "memory pressure",
        "The machine's available memory fell below the kubelet's eviction threshold (100Mi by default): "
        "no new Pods are scheduled there (taint node.kubernetes.io/memory-pressure) and the kubelet evicts "
        "Pods, those using most beyond their requests first.",
        "Free memory on {name}: find what uses it, give Pods memory requests and limits, run fewer Pods "
        "there, or add memory.",
        ("free -m", "ps aux --sort=-rss | head"),
    ),
    DISK_PRESSURE: (
        "disk-pressure",
        "disk pressure",
        "A filesystem the kubelet watches is nearly full: the one holding /var/lib/kubelet (less than 10% "
        "or 5% of its inodes free, by default) or the image filesystem (/var/lib/containerd, less than 15% "
        "free). No new Pods are scheduled there (taint node.kubernetes.io/disk-pressure); the kubelet "
        "removes unused images and evicts Pods to free space.",
        "Free space on {name}: remove unused images, old logs and files on those filesystems, or make "
        "them larger. The condition clears once the kubelet sees enough space again.",
        ("df -h /var/lib/kubelet /var/lib/containerd", "df -i /var/lib/kubelet", "crictl rmi --prune"),
    ),
    PID_PRESSURE: (
        "pid-pressure",
        "PID pressure",
        "The machine is running out of process IDs: no new Pods are scheduled there (taint "
        "node.kubernetes.io/pid-pressure) and the kubelet evicts Pods.",
        "Find the process that forks without end on {name}; limit the processes per Pod (the kubelet's "
        "podPidsLimit) or raise kernel.pid_max.",
        ("ps -eLf | wc -l", "sysctl kernel.pid_max"),
    ),
}


def _pressure(item: dict, name: str) -> Explanation:
    code, summary, meaning, fix, commands = _PRESSURE[item["type"]]
    return Explanation(code, "warning", summary, meaning, fix.format(name=name), commands, **_from(item))


def _network_unavailable(item: dict, name: str, pod_network: str) -> Explanation:
    # The kubelet never sets it: a network add-on (Calico: CalicoIsDown, "Calico is shutting down
    # on this node") or a cloud route controller (NoRouteCreated) does.
    return Explanation(
        "network-unavailable",
        "problem",
        "network unavailable",
        "The Node's network is not set up (reported by the network add-on or the cloud's route controller, "
        "not by the kubelet): Pods here cannot reach Pods elsewhere, and no new Pods are scheduled here "
        "(taint node.kubernetes.io/network-unavailable).",
        f"Look at the network add-on's Pod on {name} and its logs"
        + (f" ({pod_network}, rolled out by Kubeboard)" if pod_network else "")
        + f"; re-apply it from {POD_NETWORK_PLACE} if its objects were changed.",
        (f"kubectl get pods -A -o wide --field-selector spec.nodeName={name}",),
        **_from(item),
    )


def _ready(
    row: Mapping, items: list[dict], name: str, pod_network: str, endpoint: str, certificate_expired: str
) -> Explanation | None:
    """What the Ready condition says is wrong; None when it is True, or when the row was stored
    before Kubeboard kept conditions (no "conditions": nothing is known of why)."""
    ready = next((item for item in items if item["type"] == READY), None)
    if ready is None:
        if "conditions" not in row:
            return None
        return Explanation(
            "no-status",
            "problem",
            "no status yet",
            "The Node has no Ready condition: its kubelet registered it but has not posted a status yet.",
            f"Wait a few seconds; if it lasts, read the kubelet's log on {name}.",
            _KUBELET_LOGS,
        )
    if ready["status"] == "Unknown":
        if certificate_expired:
            return _certificate(ready, name, endpoint, expired=certificate_expired)
        return _kubelet_stopped(ready, name, endpoint)
    if ready["status"] != "True":
        return _not_ready(ready, name, pod_network, endpoint)
    return None


def explain(
    row: Mapping,
    *,
    pod_network: str = "",
    endpoint: str = "",
    kubelet_certificate_expired: str = "",
) -> list[Explanation]:
    """What is wrong with the Node of ``row`` (a node row: ``name``, ``unschedulable`` and the
    ``conditions`` of ``condition_row``), the most serious first; [] for a healthy Node.

    ``pod_network``: the add-on Kubeboard rolled out ("Flannel v0.28.9"), "" if none; it decides
    whether the fix is to install one or to look at the one there. ``endpoint``: the
    control-plane endpoint a kubelet must reach. ``kubelet_certificate_expired``: words for when
    the machine's kubelet client certificate expired ("3 days ago"), "" when it is not known to
    have: then a Node that stopped posting is blamed on the certificate.
    """
    if not isinstance(row, Mapping):
        return []
    name = bounded(row.get("name"), 253) or "the machine"
    endpoint = bounded(endpoint, 300)
    items = _conditions(row)
    found: list[Explanation] = []
    ready = _ready(row, items, name, pod_network, endpoint, bounded(kubelet_certificate_expired, 64))
    if ready is not None:
        found.append(ready)
    for item in items:
        kind, status = item["type"], item["status"]
        if kind in _PRESSURE and status == "True":
            found.append(_pressure(item, name))
        elif kind == NETWORK_UNAVAILABLE and status == "True":
            found.append(_network_unavailable(item, name, pod_network))
        elif kind not in HEALTHY_STATUS and status == "True" and kind:
            # Another controller's condition (node-problem-detector: KernelDeadlock,
            # ReadonlyFilesystem, ...): True is its problem state.
            found.append(
                Explanation(
                    "other-condition",
                    "warning",
                    kind[:40],
                    f"The Node's condition {kind} is True (set by a controller other than the kubelet).",
                    "Its message says what was found; the controller that sets it documents the fix.",
                    **_from(item),
                )
            )
    if row.get("unschedulable") is True:
        found.append(
            Explanation(
                "cordoned",
                "note",
                "cordoned",
                "The Node is cordoned (SchedulingDisabled): no new Pods are scheduled there. This is not "
                "NotReady: the Pods already there keep running.",
                "Uncordon it when its maintenance is done (the Scheduling buttons on the cluster page).",
            )
        )
    return found


def headline(row: Mapping, **context: Any) -> str:
    """The short words for the cluster page's node row: the most serious problem or warning;
    "" for a healthy Node (a cordoned one says so with its own badge)."""
    for explanation in explain(row, **context):
        if explanation.severity != "note":
            return explanation.summary
    return ""

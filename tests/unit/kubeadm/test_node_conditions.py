"""kubeadm.node_conditions: a NotReady or pressured Node explained, with the fix, from the
conditions exactly as Kubernetes v1.37.2 writes them.

The condition shapes below are the kubelet's (pkg/kubelet/nodestatus/setters.go ReadyCondition and
the pressure setters; the Ready message is the aggregate of pkg/kubelet/runtime.go's errors, the
network one built in pkg/kubelet/kubelet.go updateRuntimeUp from containerd's CRI Status,
internal/cri/server/status.go) and the node lifecycle controller's
(pkg/controller/nodelifecycle/node_lifecycle_controller.go), as read from the Go sources of the
release the test bed builds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kubeadm import node_conditions
from kubeadm.node_conditions import condition_row, explain, headline

T0 = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 6, 20, 5, tzinfo=UTC)

# containerd with no CNI configuration in /etc/cni/net.d: what every node shows after kubeadm init
# until a pod network runs (kubelet.go: "container runtime network not ready: %v" of the CRI
# RuntimeCondition's String(), "%s=%t reason:%s message:%s").
NETWORK_NOT_READY = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)


def healthy_pressures(at: datetime = T0) -> list[dict]:
    return [
        condition_row(
            "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", at, T1
        ),
        condition_row("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", at, T1),
        condition_row(
            "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", at, T1
        ),
    ]


def node(*ready: dict, pressures: list[dict] | None = None, name: str = "w1", unschedulable: bool = False) -> dict:
    # The kubelet writes Ready last (setters.go: "NodeReady condition needs to be the last").
    return {
        "name": name,
        "ready": bool(ready) and ready[0]["status"] == "True",
        "unschedulable": unschedulable,
        "conditions": [*(healthy_pressures() if pressures is None else pressures), *ready],
    }


def codes(row: dict, **context) -> list[str]:
    return [item.code for item in explain(row, **context)]


def test_a_ready_node_needs_no_explanation():
    row = node(condition_row("Ready", "True", "KubeletReady", "kubelet is posting ready status", T0, T1))
    assert explain(row) == []
    assert headline(row) == ""


def test_no_pod_network_is_named_with_the_fix_that_installs_one():
    ready = condition_row("Ready", "False", "KubeletNotReady", NETWORK_NOT_READY, T0, T1)
    [why] = explain(node(ready), endpoint="10.0.0.10:6443")
    assert why.code == "pod-network" and why.severity == "problem"
    assert headline(node(ready)) == "no pod network"
    assert "no CNI plugin is configured" in why.meaning
    assert f"Install one from {node_conditions.POD_NETWORK_PLACE}" in why.fix
    # The raw condition stays with it, so a person can check the words against kubectl describe.
    assert (why.condition, why.status, why.reason, why.message) == (
        "Ready",
        "False",
        "KubeletNotReady",
        NETWORK_NOT_READY,
    )
    assert why.since == T0.isoformat()
    assert "kubectl get pods -A -o wide --field-selector spec.nodeName=w1" in why.commands


def test_with_a_network_rolled_out_the_fix_is_its_pod_on_this_node():
    ready = condition_row("Ready", "False", "KubeletNotReady", NETWORK_NOT_READY, T0, T1)
    [why] = explain(node(ready), pod_network="Flannel v0.28.9")
    assert why.code == "pod-network"
    assert "Kubeboard rolled out Flannel v0.28.9, so its Pod on w1 is not running or not ready" in why.fix
    assert "Install one" not in why.fix


def test_the_network_is_found_among_several_errors_and_in_other_runtimes_words():
    # Several errors are aggregated as "[a, b]" (apimachinery's utilerrors.NewAggregate).
    both = f"[container runtime is down, {NETWORK_NOT_READY}]"
    assert codes(node(condition_row("Ready", "False", "KubeletNotReady", both, T0))) == ["pod-network"]
    cri_o = (
        "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
        "message:Network plugin returns error: No CNI configuration file in /etc/cni/net.d/. Has your network provider started?"
    )
    assert codes(node(condition_row("Ready", "False", "KubeletNotReady", cri_o, T0))) == ["pod-network"]


def test_kubelet_stopped_posting_names_the_kubelet_the_endpoint_and_when_it_last_posted():
    # The controller keeps the kubelet's last heartbeat and sets the transition to now.
    ready = condition_row("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", T1, T0)
    pressures = [
        condition_row(kind, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", T1, T0)
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    row = node(ready, pressures=pressures)
    [why] = explain(row, endpoint="10.0.0.10:6443")  # Unknown pressures are not pressure
    assert why.code == "kubelet-stopped" and headline(row) == "kubelet not posting status"
    assert why.heartbeat == T0.isoformat() and why.since == T1.isoformat()
    assert "systemctl status kubelet" in why.commands
    assert "journalctl -u kubelet -n 100 --no-pager" in why.commands
    assert "curl -sk https://10.0.0.10:6443/healthz" in why.commands
    assert "reaches the control-plane endpoint 10.0.0.10:6443" in why.fix
    assert "x509 or Unauthorized" in why.fix  # the certificate is one of the causes to check


def test_kubelet_never_posted():
    # The controller sets the heartbeat to the Node's creation: not a time the kubelet posted.
    ready = condition_row("Ready", "Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.", T1, T0)
    [why] = explain(node(ready, pressures=[]))
    assert why.code == "kubelet-never-posted" and why.heartbeat == ""


def test_an_expired_kubelet_certificate_is_named_when_known():
    ready = condition_row("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", T1, T0)
    [why] = explain(node(ready), kubelet_certificate_expired="3 days ago")
    assert why.code == "kubelet-certificate" and why.summary == "kubelet certificate refused"
    assert "client certificate expired 3 days ago" in why.meaning
    assert "kubeadm kubeconfig user --org system:nodes --client-name system:node:w1" in why.fix
    assert "openssl x509 -noout -enddate -in /var/lib/kubelet/pki/kubelet-client-current.pem" in why.commands


def test_certificate_words_in_a_message_are_a_certificate_problem():
    message = (
        "failed to run Kubelet: x509: certificate has expired or is not yet valid: current time 2027-01-01T00:00:00Z"
    )
    assert codes(node(condition_row("Ready", "False", "KubeletNotReady", message, T0))) == ["kubelet-certificate"]


def test_the_container_runtime():
    for message in (
        "container runtime is down",
        "container runtime status check may not have completed yet",
        "[container runtime status check may not have completed yet, network state unknown]",
        "PLEG is not healthy: pleg was last seen active 3m0.5s ago; threshold is 3m0s",
        "container runtime not ready: RuntimeReady=false reason:DockerDaemonNotReady message:docker: failed to get docker version",
    ):
        [why] = explain(node(condition_row("Ready", "False", "KubeletNotReady", message, T0)))
        assert why.code == "container-runtime", message
        assert "systemctl status containerd" in why.commands and "crictl info" in why.commands


def test_other_kubelet_messages():
    shutting = condition_row("Ready", "False", "KubeletNotReady", "node is shutting down", T0)
    assert codes(node(shutting)) == ["shutting-down"]
    starting = condition_row(
        "Ready", "False", "KubeletNotReady", "missing node capacity for resources: ephemeral-storage", T0
    )
    assert explain(node(starting))[0].severity == "warning"
    odd = condition_row("Ready", "False", "SomethingNew", "a message no rule knows", T0)
    [why] = explain(node(odd))
    assert why.code == "kubelet-not-ready" and why.message == "a message no rule knows"
    assert codes({"name": "w1", "ready": False, "conditions": []}) == ["no-status"]


def test_pressure_conditions_say_what_they_mean_and_what_frees_it():
    ready = condition_row("Ready", "True", "KubeletReady", "kubelet is posting ready status", T0)
    pressures = [
        condition_row(
            "MemoryPressure", "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available", T1
        ),
        condition_row("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure", T1),
        condition_row("PIDPressure", "True", "KubeletHasInsufficientPID", "kubelet has insufficient PID available", T1),
    ]
    found = explain(node(ready, pressures=pressures))
    assert [item.code for item in found] == ["memory-pressure", "disk-pressure", "pid-pressure"]
    assert all(item.severity == "warning" for item in found)
    disk = found[1]
    assert "/var/lib/kubelet" in disk.meaning and "/var/lib/containerd" in disk.meaning and "evicts" in disk.meaning
    assert "df -h /var/lib/kubelet /var/lib/containerd" in disk.commands and "crictl rmi --prune" in disk.commands
    assert "node.kubernetes.io/memory-pressure" in found[0].meaning
    assert headline(node(ready, pressures=pressures)) == "memory pressure"


def test_network_unavailable_and_other_controllers_conditions():
    ready = condition_row("Ready", "True", "KubeletReady", "kubelet is posting ready status", T0)
    calico_down = condition_row(
        "NetworkUnavailable", "True", "CalicoIsDown", "Calico is shutting down on this node", T1
    )
    npd = condition_row("ReadonlyFilesystem", "True", "FilesystemIsReadOnly", "Filesystem is read-only", T1)
    calico_up = condition_row("NetworkUnavailable", "False", "CalicoIsUp", "Calico is running on this node", T1)
    found = explain(node(ready, pressures=[calico_down, npd]), pod_network="Calico v3.32.1")
    assert [item.code for item in found] == ["network-unavailable", "other-condition"]
    assert "(Calico v3.32.1, rolled out by Kubeboard)" in found[0].fix
    assert found[1].summary == "ReadonlyFilesystem" and found[1].message == "Filesystem is read-only"
    assert explain(node(ready, pressures=[calico_up])) == []


def test_cordoned_is_not_notready_and_says_so():
    ready = condition_row("Ready", "True", "KubeletReady", "kubelet is posting ready status", T0)
    [why] = explain(node(ready, unschedulable=True))
    assert why.code == "cordoned" and why.severity == "note"
    assert "This is not NotReady" in why.meaning
    assert headline(node(ready, unschedulable=True)) == ""  # its SchedulingDisabled badge says it


def test_a_row_stored_before_conditions_were_kept_is_not_explained():
    assert explain({"name": "w1", "ready": False, "roles": []}) == []


def test_the_stored_row_is_bounded_and_keeps_the_heartbeat_only_while_unknown():
    huge = "x" * 100_000
    row = condition_row("Ready", "False", "R" * 1000, huge, T0, T1)
    assert len(row["message"]) == node_conditions.MESSAGE_MAX_CHARS and row["message"].endswith("…")
    assert len(row["reason"]) == node_conditions.REASON_MAX_CHARS
    assert "heartbeat" not in row  # a live kubelet moves it at every report
    assert condition_row("Ready", "Unknown", "NodeStatusUnknown", "", T1, T0)["heartbeat"] == T0.isoformat()
    assert condition_row("Ready", None, None, None, None, None) == {
        "type": "Ready",
        "status": "",
        "reason": "",
        "message": "",
        "since": "",
    }


def test_odd_stored_rows_never_raise():
    for row in (
        None,
        "junk",
        {"conditions": "junk"},
        {"conditions": {"type": "Ready"}},
        {"conditions": [None, 5, "x", {"type": ["Ready"], "status": {"a": 1}, "message": 10**30}]},
        {"name": 7, "conditions": [{"type": "Ready", "status": "False", "message": "y" * 50_000}]},
        {"conditions": [{"type": "DiskPressure", "status": "True"}] * 10_000, "unschedulable": "yes"},
    ):
        found = explain(row)  # type: ignore[arg-type]
        assert all(len(item.message) <= node_conditions.MESSAGE_MAX_CHARS for item in found)
        headline(row)  # type: ignore[arg-type]
    many = {"conditions": [{"type": "DiskPressure", "status": "True"}] * 10_000}
    assert len(explain(many)) <= node_conditions.MAX_CONDITIONS + 1

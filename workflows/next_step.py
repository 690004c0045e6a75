"""The one next step of a cluster: what a person does now to get from a new cluster to a running one.

The path is the first hour's: the cluster's identity, the cluster's SSH key, machines, each
machine checked and its host key accepted, blank machines prepared (when their last check found
no kubeadm fit for the cluster), the control plane initialized, the other machines joined, then
the pod network (applied by init's pod-network phase, or by the pod-network
operation this step offers). ``next_step`` finds the first stage that is
not done and says what to do about it; the cluster page shows it at the top
(``clusters/_next_step.html``, a live part) and an operation's page links to it once the
operation has ended. It lives in workflows/ because it reads the cluster, its machines, its key
and its operations (the nouns' data and the workflows' operation kinds).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef
from django.urls import reverse

from addons import catalog
from clusters.identity import PREPARE_IDENTITY
from clusters.models import INIT_KIND, Cluster
from nodes.models import ClusterSSHKey, Node
from nodes.readiness import needs_kubeadm
from operations.models import Operation
from workflows.join import CONTROL_PLANE as JOIN_CONTROL_PLANE_KIND
from workflows.join import WORKERS as JOIN_WORKERS_KIND
from workflows.network import KIND as POD_NETWORK_KIND
from workflows.prepare import KIND as PREPARE_KIND

# The stages in the order a cluster passes them; the page's sections follow this order.
STAGES = ("identity", "ssh-key", "machines", "check", "prepare", "initialize", "join", "network")

# Ids of the cluster page's parts that hold a stage's form (clusters/cluster_detail.html).
SECTION = {"prepare": "prepare", "initialize": "cluster-actions", "join": "join-actions", "network": "pod-network"}


@dataclass(frozen=True)
class NextStep:
    """What to do now. ``url`` is where the action is: a page, a section of the cluster page or,
    with ``method`` "post", the form's target (a button that needs no input)."""

    stage: str
    title: str
    why: str
    label: str
    url: str
    method: str = "get"
    # The step is to wait for (or look after) an operation that is running or stopped.
    operation: Operation | None = None

    @property
    def waiting(self) -> bool:
        return self.operation is not None and self.operation.is_active


def _section(cluster: Cluster, stage: str) -> str:
    return f"{cluster.get_absolute_url()}#{SECTION[stage]}"


def _latest(cluster: Cluster, *kinds: str) -> Operation | None:
    return cluster.operations.filter(kind__in=kinds).order_by("-created_at", "-id").first()


def _follow(stage: str, operation: Operation, title: str, why: str) -> NextStep:
    return NextStep(stage, title, why, "Follow it live", operation.get_absolute_url(), operation=operation)


def _resume(stage: str, operation: Operation, title: str) -> NextStep:
    why = f"It stopped: {operation.error}" if operation.error else "It stopped before its last phase."
    return NextStep(
        stage,
        title,
        f"{why} Fix the cause, then resume it from the failed phase on its page.",
        "Open the operation",
        operation.get_absolute_url(),
        operation=operation,
    )


def _check(cluster: Cluster, nodes: list[Node]) -> NextStep:
    """The step for machines whose host keys Kubeboard cannot use yet: one machine's page, or the
    page that checks several together and accepts their keys each next to its fingerprint."""
    if len(nodes) > 1:
        return NextStep(
            "check",
            f"Check {len(nodes)} machines and accept their host keys",
            "Check machine logs in, reports what kubeadm needs and records the host key each machine "
            "offers; compare each fingerprint with the machine's own (ssh-keygen -lf) and accept it.",
            "Check and accept together",
            reverse("nodes:host-keys", args=[cluster.name]),
        )
    node = nodes[0]
    state = node.host_key_state
    if state == Node.HostKeyState.OFFERED:
        title, why, label = (
            f"Accept {node.name}'s host key",
            "The machine answered with a host key: compare its fingerprint with the machine's own "
            "(ssh-keygen -lf) and accept it. Nothing runs there before.",
            "Compare and accept",
        )
    elif state == Node.HostKeyState.CHANGED:
        title, why, label = (
            f"{node.name} offers a different host key",
            "Every connection to it stops until an operator accepts the new key or keeps the pinned one.",
            "Compare the keys",
        )
    else:
        title, why, label = (
            f"Check {node.name}",
            "Check machine logs in, reports what kubeadm needs and records the host key the machine "
            "offers, for you to accept.",
            "Open the machine",
        )
    return NextStep("check", title, why, label, node.get_absolute_url())


def _prepare(cluster: Cluster, machines: list[Node]) -> NextStep | None:
    """The step for ``machines`` (host keys accepted, not joined) whose last check found no kubeadm
    that can deploy the cluster's version: Prepare machines, or the Prepare running or stopped.
    None when none needs it (a machine never checked since its key was accepted says nothing:
    init's own check finds a missing kubeadm and its hint names Prepare)."""
    blank = [node for node in machines if needs_kubeadm(node.facts or {})]
    operation = _latest(cluster, PREPARE_KIND)
    if operation is not None and operation.is_active:
        return _follow(
            "prepare",
            operation,
            "Wait: machines are being prepared",
            "Swap, kernel modules, sysctls, containerd, then kubeadm, kubelet, kubectl and crictl at the cluster's "
            "version; each machine is checked again at the end.",
        )
    if not blank:
        return None
    named = {node.name for node in blank}
    stopped = {machine.get("name") for machine in (operation.params.get("machines") or [])} if operation else set()
    if operation is not None and operation.is_resumable and not operation.params.get("dry_run") and named & stopped:
        return _resume("prepare", operation, "Preparing machines stopped")
    names = ", ".join(node.name for node in blank[:3]) + (" …" if len(blank) > 3 else "")
    return NextStep(
        "prepare",
        f"Prepare {blank[0].name}" if len(blank) == 1 else f"Prepare {len(blank)} machines",
        f"The last check found no kubeadm for Kubernetes {cluster.kubernetes_version} on {names}. Prepare installs "
        "containerd, kubeadm, kubelet, kubectl and crictl from the source chosen there (package repositories or "
        "an artifact set), with swap, kernel modules and sysctls as kubeadm checks them.",
        "Prepare machines",
        _section(cluster, "prepare"),
    )


def next_step(cluster: Cluster) -> NextStep:
    """The first stage of ``cluster`` that is not done, as what to do now."""
    if not cluster.is_adopted and not cluster.ca_pin_hash:
        prepare = _latest(cluster, PREPARE_IDENTITY.name)
        if prepare is not None and prepare.is_resumable:
            return _resume("identity", prepare, "Preparing the cluster's identity stopped")
        if prepare is not None:
            return _follow(
                "identity",
                prepare,
                "Wait: the cluster's identity is being prepared",
                "Kubeboard generates the certificate authorities, the CA pin and the kubeadm configuration.",
            )
        return NextStep(
            "identity",
            "The cluster has no identity yet",
            "No operation prepared its certificate authorities.",
            "Open the cluster",
            cluster.get_absolute_url(),
        )

    nodes = list(cluster.nodes.order_by("name"))
    if not nodes:
        if not ClusterSSHKey.objects.filter(cluster=cluster).exists():
            return NextStep(
                "ssh-key",
                "Generate the cluster's SSH key",
                "Kubeboard logs in to your machines with it: you add its public key to each machine's "
                "authorized_keys before adding the machine (a machine may also use its own key or a password).",
                "Generate the cluster's SSH key",
                reverse("nodes:cluster-key", args=[cluster.name]),
                method="post",
            )
        return NextStep(
            "machines",
            "Add a machine",
            "Register the first machine by address, SSH port and user; the control plane is initialized on it.",
            "Add machine",
            reverse("nodes:add", args=[cluster.name]),
        )

    if not cluster.is_adopted and cluster.status != Cluster.Status.RUNNING:
        init = _latest(cluster, INIT_KIND)
        if init is not None and init.is_active:
            return _follow(
                "initialize",
                init,
                f"Wait: the control plane is being initialized on {init.params.get('node', 'a machine')}",
                "kubeadm init runs phase by phase; machines can be joined once it has succeeded.",
            )
        if init is not None and init.is_resumable:
            return _resume("initialize", init, "Initializing the control plane stopped")
        # The Initialize form offers the machines registered as control planes (workflows.cluster_forms).
        control_planes = [node for node in nodes if node.role == Node.Role.CONTROL_PLANE and not node.is_joined]
        if not control_planes:
            return NextStep(
                "machines",
                "Add a control-plane machine",
                "The control plane is initialized on a machine registered with the role Control plane; "
                "the machines here are all workers.",
                "Add machine",
                reverse("nodes:add", args=[cluster.name]),
            )
        pinned = [node for node in control_planes if node.host_key_state == Node.HostKeyState.PINNED]
        if not pinned:
            return _check(cluster, control_planes)
        # Every machine added so far is prepared together (workers too: one Prepare, then init, then joins).
        accepted = [node for node in nodes if node.host_key_state == Node.HostKeyState.PINNED and not node.is_joined]
        step = _prepare(cluster, accepted)
        if step is not None:
            return step
        return NextStep(
            "initialize",
            "Initialize the control plane",
            f"Choose the first control-plane machine ({len(pinned)} with an accepted host key) and run kubeadm "
            "init on it, phase by phase.",
            "Initialize",
            _section(cluster, "initialize"),
        )

    join = _latest(cluster, JOIN_WORKERS_KIND, JOIN_CONTROL_PLANE_KIND)
    if join is not None and join.is_active:
        return _follow(
            "join", join, "Wait: machines are joining", "Each machine joins with its own token, then is checked Ready."
        )
    waiting = [node for node in nodes if not node.is_joined]
    if join is not None and join.is_resumable and waiting:
        return _resume("join", join, "Joining machines stopped")
    ready = [node for node in waiting if node.host_key_state == Node.HostKeyState.PINNED]
    step = _prepare(cluster, ready)
    if step is not None:
        return step
    if ready:
        workers = [node for node in ready if node.role == Node.Role.WORKER]
        names = ", ".join(node.name for node in ready[:3]) + (" …" if len(ready) > 3 else "")
        title = "Join workers" if workers else "Join control planes"
        return NextStep(
            "join",
            title,
            f"{len(ready)} machine{'s' if len(ready) != 1 else ''} can join: {names}.",
            title,
            _section(cluster, "join"),
        )
    if waiting:
        return _check(cluster, waiting)
    return _network(cluster)


def _network(cluster: Cluster) -> NextStep:
    """Every machine has joined: the pod network chosen for the cluster, rolled out or not."""
    operation = _latest(cluster, POD_NETWORK_KIND)
    if operation is not None and operation.is_active:
        return _follow(
            "network",
            operation,
            "Wait: the pod network is being applied",
            "Each object is applied with server-side apply, then every DaemonSet is waited for on every node.",
        )
    wanted = cluster.pod_network_wanted
    if wanted and cluster.pod_network_applied != wanted:
        same = operation is not None and f"{operation.params.get('network')} {operation.params.get('version')}"
        if operation is not None and operation.is_resumable and same == wanted:
            return _resume("network", operation, "Applying the pod network stopped")
        before = f" (replacing {cluster.pod_network_applied})" if cluster.pod_network_applied else ""
        return NextStep(
            "network",
            "Install a pod network",
            f"{cluster.pod_network_label} is chosen and not rolled out yet{before}: until a network add-on runs, "
            "nodes on real machines stay NotReady and no Pod gets an address.",
            f"Install {cluster.pod_network_label}",
            reverse("clusters:pod-network", args=[cluster.name]),
            method="post",
        )
    if cluster.pod_network == catalog.NONE:
        return NextStep(
            "network",
            "This cluster has no pod network",
            "None was chosen, so Kubeboard applies no network add-on: apply one yourself with the admin "
            "kubeconfig, or choose Flannel or Calico here. Nodes on real machines stay NotReady until one runs.",
            "Change the pod network",
            _section(cluster, "network"),
        )
    if not wanted:
        return NextStep(
            "network",
            "Choose a pod network",
            "Every machine has joined. Choose the network add-on Kubeboard applies (Flannel or Calico), or none "
            "if you install one yourself.",
            "Choose a pod network",
            _section(cluster, "network"),
        )
    return NextStep(
        "network",
        f"Running with {cluster.pod_network_label}",
        "Every machine has joined and the pod network is rolled out. Add machines to grow the cluster.",
        "Add machine",
        reverse("nodes:add", args=[cluster.name]),
    )


def panel(cluster: Cluster, user) -> dict:
    """The cluster page's next step (clusters/_next_step.html)."""
    return {"next_step": next_step(cluster)}


def fields() -> dict:
    """What the next step reads that no other live part's version does: whether the cluster has
    its SSH key (read with the cluster's row)."""
    return {"live_ssh_key": Exists(ClusterSSHKey.objects.filter(cluster=OuterRef("pk")))}


def version(cluster: Cluster) -> tuple:
    """The rest of what the step depends on (status, init, machines, operations) is in the
    versions of the parts it is listed after (clusters.panels.LIVE_PARTS)."""
    return (
        cluster.live_ssh_key,
        cluster.ca_pin_hash,
        cluster.is_adopted,
        cluster.pod_network,
        cluster.pod_network_version,
        cluster.pod_network_applied,
    )


def after_operation(operation: Operation) -> NextStep | None:
    """The cluster's next step, for the page of an operation that has ended: None while it runs
    and when the step is this operation itself (its page's Resume is the step)."""
    if operation.is_active:
        return None
    step = next_step(operation.cluster)
    if step.operation is not None and step.operation.pk == operation.pk:
        return None
    return step

"""Reset a node: the machine goes back to "blank" and may join again.

Order (one group of phases named after the node):

1. ``check`` — read-only: for a control plane, the etcd member list and each member's health
   (``etcdctl`` on another control plane when there is one): removing this member must leave a
   majority of healthy members, or the reset is refused with the numbers;
2. ``drain`` — when the API server answers: cordon and evict the node's Pods (static and
   DaemonSet Pods stay, as with ``kubectl drain --ignore-daemonsets``);
3. ``revoke-tokens`` — the bootstrap tokens made for this machine are deleted (Secret and row),
   while the API server still answers (a last control plane takes it down with itself);
4. kubeadm's own phases, one command each: ``preflight`` (``--force``), ``remove-etcd-member``
   (a control plane's member leaves etcd before anything is deleted, so quorum is kept),
   ``cleanup-node`` (``--cleanup-tmp-dir``: kubeadm's scratch files go too; on a control plane,
   once etcd is stopped, what a restarted etcd wrote into its emptied data directory goes too);
5. ``delete-node`` — the Node object is deleted *after* cleanup-node stopped the kubelet (deleted
   before, a running kubelet registers it again at once);
6. ``forget`` — Kubeboard's own files (/etc/kubernetes/kubeboard) go, the machine is checked
   again (read-only) and marked new: it can be chosen for a join. After the last control plane
   the cluster's bootstrap tokens are marked gone (their Secrets were in the wiped etcd).

Refused before anything runs: a control plane that is the last one while workers remain (they
would be left without an API server), and — in the check phase, with live numbers — a
control plane whose removal would cost etcd its quorum.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

import kube
from audit.services import refusals_of
from clusters import preconditions
from clusters.models import Cluster, MachineInventory
from kubeadm import nodeconfig, workflow
from kubeadm.components import ETCD_CLIENT_PORT, KUBERNETES_DIR
from nodes import readiness
from nodes.connect import phase_connection, run_kubeadm
from nodes.models import Node
from operations.models import Operation
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import PhaseContext, PhaseError
from remote import commands
from workflows import endpoint, etcd
from workflows.backup import settings_for, wait_ports
from workflows.models import CertificateReport

KIND = "reset-node"


class ResetRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _is_control_plane(ctx: PhaseContext) -> bool:
    return ctx.params.get("role") == Node.Role.CONTROL_PLANE


def _last_control_plane(ctx: PhaseContext) -> bool:
    return bool(ctx.params.get("last_control_plane"))


def _api_reachable(ctx: PhaseContext) -> bool:
    try:
        kube.readyz(ctx.cluster)
        return True
    except kube.KubeAPIError as exc:
        ctx.log(f"The API server does not answer ({exc}).", level="warning")
        return False


def quorum_problem(members: list[etcd.Member], health: dict[str, bool], leaving: str) -> str | None:
    """Why removing member ``leaving`` would lose etcd's quorum (None when it would not)."""
    names = {m.name for m in members}
    if leaving not in names:
        return None  # already gone: kubeadm's remove-etcd-member only says so
    total = len(members)
    healthy = {m.name for m in members if any(health.get(url) for url in m.client_urls)}
    if len(healthy) < total // 2 + 1:
        return (
            f"etcd has no quorum now: {len(healthy)} of {total} members are healthy "
            f"({', '.join(sorted(healthy)) or 'none'}); removing a member needs a majority to agree"
        )
    healthy_after = len(healthy - {leaving})
    if not etcd.quorum_after_removal(total, healthy_after):
        return (
            f"removing {leaving} leaves {total - 1} member(s) of which {healthy_after} healthy; etcd needs "
            f"{(total - 1) // 2 + 1} for quorum"
        )
    return None


def _check(ctx: PhaseContext) -> None:
    node = ctx.node
    if not _is_control_plane(ctx):
        ctx.log(f"{node.name} is a worker: no etcd member to remove.")
        return
    tools = settings_for(ctx.cluster)
    others = [
        n for n in ctx.cluster.nodes.filter(role=Node.Role.CONTROL_PLANE, status=Node.Status.JOINED).exclude(pk=node.pk)
    ]
    # The etcd view from another control plane first (this member may be the broken one); the
    # member list is read serializable, so a member that lost quorum still says who is there.
    from nodes.connect import connect
    from remote import ssh

    members: list[etcd.Member] = []
    health: dict[str, bool] = {}
    asked = node
    for candidate in [*others, node]:
        try:
            with connect(candidate) as conn:
                status, lines = commands.run(
                    ctx, conn,
                    etcd.etcdctl(tools.etcdctl, "member", "list", "--consistency=s", "-w", "json"),
                    label="etcdctl member list", show=False, check=False,
                )  # fmt: skip
                if status != 0:
                    ctx.log(
                        f"etcdctl member list on {candidate.name} failed: {' '.join(lines)[-300:]}", level="warning"
                    )
                    continue
                members = etcd.parse_member_list(lines)
                endpoints = ",".join(url for m in members for url in m.client_urls)
                if endpoints:
                    _, lines = commands.run(
                        ctx, conn,
                        etcd.etcdctl(tools.etcdctl, "endpoint", "health", "-w", "json", endpoints=endpoints)
                        + ["--command-timeout=5s"],
                        label="etcdctl endpoint health", show=False, check=False,
                    )  # fmt: skip
                    health = etcd.parse_endpoint_health(lines)
                asked = candidate
                break
        except ssh.SSHError as exc:
            ctx.log(f"{candidate.name}: {exc}", level="warning")
    if not members:
        raise PhaseError(
            f"no control plane listed etcd's members ({', '.join(n.name for n in [*others, node])} asked)",
            hint="bring the control planes' etcd members back before resetting one",
        )
    ctx.log(
        f"etcd members (asked {asked.name}): "
        + ", ".join(
            f"{m.name} ({'healthy' if any(health.get(u) for u in m.client_urls) else 'NOT healthy'})" for m in members
        )
    )
    problem = quorum_problem(members, health, node.name)
    if problem:
        raise PhaseError(
            f"resetting {node.name} is refused: {problem}",
            hint="bring the unhealthy members back (or reset an unhealthy one only once the others are healthy); "
            "nothing was changed",
        )
    ctx.log(f"Removing {node.name}'s member keeps quorum.")


def _drain(ctx: PhaseContext) -> None:
    if _last_control_plane(ctx):
        ctx.log("The last control plane: nothing can be evicted to (its API server goes with it).")
        return
    if not _api_reachable(ctx):
        ctx.log("Not draining: the cluster does not answer. kubeadm reset runs anyway.", level="warning")
        return
    kube.phase_drain(ctx)


def _revoke_tokens(ctx: PhaseContext) -> None:
    from tokens.models import BootstrapToken
    from tokens.services import delete_token

    tokens = list(
        BootstrapToken.objects.filter(
            cluster=ctx.cluster,
            node=ctx.node,
            status__in=(BootstrapToken.Status.ACTIVE, BootstrapToken.Status.EXPIRED),
        )
    )
    if not tokens:
        ctx.log(f"No bootstrap token of {ctx.node.name} is left to revoke.")
        return
    for token in tokens:
        with kube.phase_errors(context=f"could not revoke token {token.token_id}"):
            delete_token(token, user=ctx.operation.requested_by, reason=f"node {ctx.node.name} reset")
        ctx.log(f"Revoked bootstrap token {token.token_id} (Secret deleted, row marked revoked).")


def kubeadm_reset_phase(name: str):
    def run(ctx: PhaseContext) -> None:
        argv = workflow.reset_phase_command(name)
        if name == "cleanup-node":
            argv.append("--cleanup-tmp-dir")
        run_kubeadm(ctx, argv, label=f"kubeadm reset phase {name}")

    run.__name__ = f"kubeadm_reset_{name.replace('-', '_')}"
    return run


# The kubelet restarts an etcd whose member was just removed; until cleanup-node stops the kubelet
# that etcd may write a fresh data directory into the one remove-etcd-member emptied.
ETCD_STOP_TIMEOUT = 60


def _cleanup_node(ctx: PhaseContext) -> None:
    """kubeadm's cleanup-node, then (control plane) an etcd data directory left empty for a new join."""
    data_dir = ""
    if _is_control_plane(ctx):
        with phase_connection(ctx) as conn:
            status, lines = commands.quiet(conn, ["cat", etcd.MANIFEST])
        if status == 0:
            data_dir = etcd.local_member("\n".join(lines)).data_dir
    kubeadm_reset_phase("cleanup-node")(ctx)
    if not data_dir:
        return
    with phase_connection(ctx) as conn:
        wait_ports(ctx, conn, closed={ETCD_CLIENT_PORT}, timeout=ETCD_STOP_TIMEOUT)
        _, left = commands.quiet(conn, ["find", data_dir, "-mindepth", "1", "-maxdepth", "1"])
        if left:
            ctx.log(
                f"etcd, restarted after its member left, left {len(left)} file(s) in {data_dir}; "
                "deleted now that it is stopped, so the machine can join again.",
                level="warning",
            )
            commands.run(ctx, conn, ["find", data_dir, "-mindepth", "1", "-delete"], label="find")


def _delete_node(ctx: PhaseContext) -> None:
    if _last_control_plane(ctx):
        ctx.log("The last control plane is reset: its API server (and every Node object) is gone with it.")
        return
    if not _api_reachable(ctx):
        ctx.log(f"Node object {ctx.node.name} not deleted: the cluster does not answer.", level="warning")
        return
    with kube.phase_errors():
        deleted = kube.delete_node(ctx.cluster, ctx.node.name)
    ctx.log(f"Deleted Node {ctx.node.name}." if deleted else f"There was no Node {ctx.node.name} to delete.")


def mark_blank(node: Node, *, last_control_plane: bool, user=None) -> list:
    """Kubeboard's records once kubeadm reset the machine: it is new again and its read-backs go.
    After the last control plane the cluster can be initialized again (its identity stays), and
    its bootstrap tokens are marked gone (returned): their Secrets were in the etcd just wiped."""
    from tokens.services import forget_cluster_tokens

    gone = []
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(status=Node.Status.NEW)
        MachineInventory.objects.filter(node=node).delete()
        CertificateReport.objects.filter(node=node).delete()
        if last_control_plane:
            Cluster.objects.filter(pk=node.cluster_id).update(status=Cluster.Status.READY)
            gone = forget_cluster_tokens(
                node.cluster, user=user, reason=f"the last control plane {node.name} was reset"
            )
    return gone


def _forget(ctx: PhaseContext) -> None:
    from nodes.services import run_check

    node = ctx.node
    with phase_connection(ctx) as conn:
        commands.run(ctx, conn, ["rm", "-rf", nodeconfig.CONFIG_DIR], label="rm")
    gone = mark_blank(node, last_control_plane=_last_control_plane(ctx), user=ctx.operation.requested_by)
    if gone:
        ids = ", ".join(token.token_id for token in gone)
        ctx.log(f"Bootstrap token(s) {ids} marked gone: their Secrets went with the cluster's etcd.")
    report = run_check(node.pk, actor=ctx.operation.requested_by, progress=lambda step: ctx.log(f"Check: {step}"))
    etc = report.get("etc_kubernetes") or {}
    if etc.get("populated"):
        raise PhaseError(
            f"{node.name}: {KUBERNETES_DIR} still holds {etc.get('count')} file(s): {', '.join(etc.get('files', [])[:5])}",
            hint="remove them by hand (kubeadm reset leaves files it did not create), then resume",
        )
    ctx.log(f"{node.name} is a blank machine again: {KUBERNETES_DIR} is empty; it can join a cluster.")


PHASES = (
    PhaseSpec(
        "check", "For a control plane: the etcd members' health, so removing this one keeps quorum", _check, True
    ),
    PhaseSpec("drain", "Cordon the node and evict its Pods (when the API server answers)", _drain, idempotent=True),
    PhaseSpec("revoke-tokens", "Revoke the bootstrap tokens made for this machine", _revoke_tokens, idempotent=True),
    PhaseSpec(
        endpoint.RESET_PHASE,
        "Stop the machine's keepalived/haproxy (the VIP moves at once) and drop its API server from every proxy",
        endpoint.reset_endpoint,
        idempotent=True,
    ),
    PhaseSpec("preflight", "kubeadm reset phase preflight --force", kubeadm_reset_phase("preflight"), True),
    PhaseSpec(
        "remove-etcd-member",
        "kubeadm reset phase remove-etcd-member: this control plane's member leaves etcd",
        kubeadm_reset_phase("remove-etcd-member"),
        idempotent=True,
    ),
    PhaseSpec(
        "cleanup-node",
        "kubeadm reset phase cleanup-node: stop the kubelet, delete kubeadm's files",
        _cleanup_node,
        idempotent=True,
    ),
    PhaseSpec("delete-node", "Delete the Node object (its kubelet no longer runs)", _delete_node, idempotent=True),
    PhaseSpec("forget", "Remove Kubeboard's files, check the machine again, mark it blank", _forget, idempotent=True),
)


def _plan(operation: Operation) -> list[PlannedPhase]:
    names = [spec.name for spec in PHASES]
    control_plane = operation.params.get("role") == Node.Role.CONTROL_PLANE
    if not control_plane:
        names.remove("remove-etcd-member")
    unplanned = endpoint.reset_phases_unplanned(operation.cluster, control_plane=control_plane)
    names = [name for name in names if name not in unplanned]
    node_id, group = operation.params["node_id"], operation.params["node"]
    return [PlannedPhase(name, group=group, node_id=node_id) for name in names]


RESET = OperationKind(name=KIND, label="Reset node", phases=PHASES, plan=_plan)


RESETTABLE = (Node.Status.JOINED, Node.Status.FAILED, Node.Status.JOINING)


def resettable(cluster) -> QuerySet[Node]:
    """The machines that hold something of the cluster (joined, or a join or init that failed)."""
    return cluster.nodes.filter(status__in=RESETTABLE)


def reset_precondition(cluster) -> preconditions.Precondition:
    """Whether the cluster page offers a reset: it needs no API server (a machine whose init
    failed is reset to start again), only a machine that holds something to reset."""
    if resettable(cluster).exists():
        return preconditions.MET
    return preconditions.Precondition(
        f"no machine of cluster {cluster.name} has joined it or tried to", "there is nothing to reset"
    )


@refusals_of("operation.queued", ResetRefused, details={"kind": KIND})
def start_reset(node: Node, *, user=None, confirm: str = "", undoes: Operation | None = None) -> Operation:
    """Refuse what would break the cluster (nothing runs), then queue the reset of ``node``.
    ``undoes``: the failed join this reset undoes (workflows.undo_join), so its page can offer
    that join again once the machine is blank."""
    from operations.services import start_operation

    cluster = node.cluster
    if confirm.strip() != node.name:
        raise ResetRefused(
            f"resetting {node.name} deletes everything kubeadm put on it; type its name to confirm",
            hint="its Pods are evicted first when the cluster answers",
        )
    if node.status not in RESETTABLE:
        raise ResetRefused(
            f"{node.name} is {node.get_status_display().lower()}: there is nothing of a cluster on it to reset",
            hint="run Check machine to see what it holds",
        )
    active = cluster.operations.filter(status__in=Operation.ACTIVE_STATUSES, mutating=True).first()
    if active is not None:
        raise ResetRefused(f"operation #{active.pk} ({active.get_kind_display()}) is running", hint="wait for it")
    problems = [
        p
        for p in readiness.facts_refusals(node, kubernetes_version=cluster.kubernetes_version)
        if "host key" in p.message
    ]
    if problems:
        raise ResetRefused(problems[0].message, hint=problems[0].hint)
    control_planes = cluster.nodes.filter(role=Node.Role.CONTROL_PLANE, status=Node.Status.JOINED)
    last = node.role == Node.Role.CONTROL_PLANE and not control_planes.exclude(pk=node.pk).exists()
    if last:
        workers = list(
            cluster.nodes.filter(role=Node.Role.WORKER, status__in=(Node.Status.JOINED, Node.Status.JOINING))
            .order_by("name")
            .values_list("name", flat=True)
        )
        if workers:
            raise ResetRefused(
                f"{node.name} is the last control plane while {len(workers)} worker(s) remain "
                f"({', '.join(workers)}); they would be left without an API server",
                hint="reset the workers first (or join another control plane), then reset this one",
            )
    previous = node.status
    with transaction.atomic():
        operation = start_operation(
            cluster,
            KIND,
            user=user,
            params={
                "node_id": node.pk,
                "node": node.name,
                "role": node.role,
                "last_control_plane": last,
                "previous_status": previous,
                **({"undoes_join": undoes.pk} if undoes is not None else {}),
            },
        )
    return operation

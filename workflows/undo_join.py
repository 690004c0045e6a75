"""Undo a failed join attempt in one click: the day-two reset of exactly that machine.

A join that fails part way leaves files in the machine's /etc/kubernetes; a new join is refused
until they are gone unless they are byte for byte what it would upload. The way out was
"Reset a machine" under Day two (choose it, type its name); here the failed join's page and the
machine's page offer it as one button. It is the reset (``workflows.reset.start_reset``, with its
own refusals, audit record and phases), started for a machine that is provably not a member:

* its latest join operation ended without success (failed, interrupted, cancelled) and left
  it "failed" (a join that never reached the machine left nothing to undo);
* the cluster's API server answers and lists no Node of that name: a machine that registered
  (Ready or not) is a member, taken out only by the deliberate reset, which drains it first.
  When the API server does not answer nobody can tell, so that is refused too.

Pages decide what to show from the database alone (``offer``); the API server is asked only
when the button is pressed (``start_undo_join``).
"""

from __future__ import annotations

from dataclasses import dataclass

import kube
from audit.services import refusals
from clusters import preconditions
from clusters.preconditions import Precondition
from nodes import places
from nodes.models import Node
from operations.models import Operation, PhaseRun
from workflows import join, reset

JOIN_KINDS = (join.WORKERS, join.CONTROL_PLANE)
LABEL = "Undo this join attempt on {node}"


@dataclass(frozen=True)
class Offer:
    """The undo a page shows for ``node``: the join it undoes and whether it can start now."""

    node: Node
    join: Operation
    precondition: Precondition

    @property
    def label(self) -> str:
        return LABEL.format(node=self.node.name)


def latest_join(node: Node) -> Operation | None:
    """The newest join operation that had phases on ``node`` (any outcome)."""
    ran_here = PhaseRun.objects.filter(node_id=node.pk).values("operation_id")
    return (
        Operation.objects.filter(cluster_id=node.cluster_id, kind__in=JOIN_KINDS, pk__in=ran_here)
        .order_by("-created_at", "-pk")
        .first()
    )


def _not_member(node: Node) -> Precondition:
    if node.status == Node.Status.JOINED:
        return Precondition(
            f"{node.name} has joined cluster {node.cluster.name}: it is a member, not a failed join",
            f"to take it out, use {places.reset_text(node)}, which drains it first",
        )
    return preconditions.MET


def _not_busy(node: Node) -> Precondition:
    active = node.cluster.operations.filter(status__in=Operation.ACTIVE_STATUSES, mutating=True).first()
    if active is not None:
        return Precondition(
            f"operation #{active.pk} ({active.get_kind_display()}) is running on cluster {node.cluster.name}",
            "wait for it to end",
        )
    return preconditions.MET


def offer(node: Node) -> Offer | None:
    """What the machine's page shows: None when there is no failed join of ``node`` to undo
    (never tried, being joined, already reset); else the offer, unmet with the reason when the
    machine joined after all (a join that failed only in its closing read-back) or another
    operation runs."""
    if node.status not in (Node.Status.FAILED, Node.Status.JOINED):
        return None
    last = latest_join(node)
    if last is None or last.status not in Operation.RESUMABLE_STATUSES:
        return None
    # The first unmet one (a Precondition is false when unmet, so ``or`` would not do).
    unmet = next((p for p in (_not_member(node), _not_busy(node)) if not p), preconditions.MET)
    return Offer(node=node, join=last, precondition=unmet)


def offers_for(operation: Operation) -> list[Offer]:
    """What a join operation's page shows: one offer per machine whose latest join is this one
    and failed there; nothing for other kinds or while the operation runs."""
    if operation.kind not in JOIN_KINDS or operation.status not in Operation.RESUMABLE_STATUSES:
        return []
    found = []
    for node in Node.objects.filter(pk__in=operation.params.get("node_ids") or []).select_related("cluster"):
        made = offer(node)
        if made is not None and made.join.pk == operation.pk:
            found.append(made)
    return sorted(found, key=lambda made: made.node.name)


def _registered(node: Node) -> Precondition:
    """Whether the API server lists a Node called like the machine (the live member list)."""
    cannot_tell = f"use {places.reset_text(node)} if you are sure it is not working in the cluster"
    running = preconditions.running(node.cluster)
    if not running:
        return Precondition(f"cannot tell whether {node.name} is a member: {running.reason}", cannot_tell)
    try:
        ready = kube.node_ready(node.cluster, node.name)
    except kube.KubeAPIError as exc:
        return Precondition(
            f"cannot tell whether {node.name} is a member: the cluster's API server did not answer ({exc})",
            f"try again when it answers, or {cannot_tell}",
        )
    if ready is not None:
        state = "Ready" if ready else "NotReady"
        return Precondition(
            f"{node.name} is registered with cluster {node.cluster.name}'s API server (Node {node.name}, {state}): "
            "it is a member, not a failed join",
            f"to take it out, use {places.reset_text(node)}, which drains it first",
        )
    return preconditions.MET


def _refuse(node: Node) -> Operation:
    member = _not_member(node)
    if not member:
        raise reset.ResetRefused(member.reason, hint=member.hint)
    made = offer(node)
    if made is None:
        raise reset.ResetRefused(
            f"{node.name} has no failed join to undo ({node.get_status_display().lower()})",
            hint=f"its page lists what ran on it ({places.machine_page(node)})",
        )
    # What the page showed first (cheap), then the live member list.
    problem = _registered(node) if made.precondition else made.precondition
    if not problem:
        raise reset.ResetRefused(problem.reason, hint=problem.hint)
    return made.join


def start_undo_join(node: Node, *, user=None) -> Operation:
    """Refuse a machine that is (or may be) a member, then start its reset as Day two would.

    The refusals here are recorded like the reset's own (``operation.queued``, denied); the
    reset's own refusals and its start are recorded by ``start_reset``, so each press leaves
    exactly one record."""
    with refusals("operation.queued", reset.ResetRefused, actor=user, obj=node, details={"kind": reset.KIND}):
        failed = _refuse(node)
    return reset.start_reset(node, user=user, confirm=node.name, undoes=failed)


@dataclass(frozen=True)
class Rejoin:
    """After an undo: the join that failed, to start again for the machine now blank."""

    node: Node
    join: Operation

    @property
    def control_plane(self) -> bool:
        return self.join.kind == join.CONTROL_PLANE


def rejoin_for(operation: Operation) -> Rejoin | None:
    """What a reset's page offers once it undid a failed join and left the machine blank."""
    undone = operation.params.get("undoes_join") if operation.kind == reset.KIND else None
    if not undone or operation.status != Operation.Status.SUCCEEDED:
        return None
    # Blank again: new, or reachable once the reset's closing machine check ran; not if it has
    # been joined (or tried) since.
    node = (
        Node.objects.filter(pk=operation.params.get("node_id"))
        .exclude(status__in=(Node.Status.JOINED, Node.Status.JOINING, Node.Status.FAILED))
        .first()
    )
    failed = Operation.objects.filter(pk=undone, kind__in=JOIN_KINDS).first()
    if node is None or failed is None:
        return None
    return Rejoin(node=node, join=failed)

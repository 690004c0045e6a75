"""A machine's history: which audit records are about it, and its story in three lines (who
approved its host key, which token it joined with, who made that token). Audit sits below every
domain app, so it cannot know a node; this module registers the node's history with it
(``audit.queries.register_history``, from ``NodesConfig.ready``) and the history page and the
``node`` filter of the audit history use it."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from audit.models import AuditEvent
from audit.queries import ObjectHistory
from core.permissions import VIEW, restrict
from nodes.models import Node
from operations.models import PhaseRun

TOKEN_CREATED = ("token.created", "token.rotated", "token.imported")


def node_story_filter(node_id: int) -> Q:
    """Everything about one machine: its own records, the operations that acted on it, the
    tokens made for it or named as the one it joined with, and records naming it in details."""
    # The token model through the relation it declares to Node (tokens builds on nodes, not the
    # reverse), so this noun app imports no other noun app's module.
    BootstrapToken = Node.tokens.rel.related_model

    condition = Q(object_type="node", object_id=str(node_id))
    node = Node.objects.filter(pk=node_id).only("id", "name", "cluster_id").first()
    own = AuditEvent.objects.filter(object_type="node", object_id=str(node_id))
    cluster_id = node.cluster_id if node else own.values_list("cluster_id", flat=True).first()
    name = node.name if node else None
    if cluster_id is not None:
        in_cluster = Q(cluster_id=cluster_id)
        condition |= in_cluster & Q(details__node_id=node_id)
        if name:
            condition |= in_cluster & Q(details__node=name)
        token_ids = set(BootstrapToken.objects.filter(node_id=node_id).values_list("token_id", flat=True))
        for details in own.values_list("details", flat=True):
            if isinstance(details, dict) and isinstance(details.get("token_id"), str):
                token_ids.add(details["token_id"])
        if token_ids:
            token_pks = BootstrapToken.objects.filter(cluster_id=cluster_id, token_id__in=token_ids).values_list(
                "pk", flat=True
            )
            condition |= Q(object_type="bootstraptoken", object_id__in=[str(pk) for pk in token_pks])
            condition |= in_cluster & Q(details__token_id__in=sorted(token_ids))
        operation_ids = set(PhaseRun.objects.filter(node_id=node_id).values_list("operation_id", flat=True))
        if operation_ids:
            condition |= Q(object_type="operation", object_id__in=[str(pk) for pk in operation_ids])
    return condition


def visible_node(user: AbstractBaseUser | AnonymousUser, node_id: int) -> Node | None:
    return restrict(Node.objects.select_related("cluster"), user, VIEW).filter(pk=node_id).first()


@dataclass
class NodeStory:
    node_id: int
    label: str
    host_key: AuditEvent | None
    tokens: list[tuple[str, AuditEvent | None]]  # (token id, the record of its creation)
    joins: list[AuditEvent]
    template: str = "nodes/story.html"


def node_story(node_id: int, node: Node | None, records: QuerySet) -> NodeStory:
    label = (
        str(node)
        if node is not None
        else (records.filter(object_type="node").values_list("object_repr", flat=True).first() or f"machine #{node_id}")
    )
    host_key = records.filter(action="node.host_key_accepted").order_by("-id").first()
    token_ids: list[str] = []
    for details in records.exclude(details={}).values_list("details", flat=True)[:500]:
        token_id = details.get("token_id") if isinstance(details, dict) else None
        if isinstance(token_id, str) and token_id not in token_ids:
            token_ids.append(token_id)
    if node is not None:
        for token_id in node.tokens.values_list("token_id", flat=True):
            if token_id not in token_ids:
                token_ids.append(token_id)
    tokens = []
    for token_id in token_ids:
        created = (
            records.filter(action__in=TOKEN_CREATED, details__token_id=token_id).order_by("id").first()
            or records.filter(action__in=TOKEN_CREATED, details__successor_id=token_id).order_by("id").first()
        )
        tokens.append((token_id, created))
    joins = list(records.filter(action__startswith="node.join").order_by("-id")[:5])
    return NodeStory(node_id, label, host_key, tokens, joins)


NODE_HISTORY = ObjectHistory(condition=node_story_filter, find=visible_node, story=node_story)

"""A machine's story in three lines: who approved its host key, which token it joined with,
and who made that token — read from the records the node, token and join services write."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from audit.models import AuditEvent


@dataclass
class NodeStory:
    node_id: int
    label: str
    host_key: AuditEvent | None
    tokens: list[tuple[str, AuditEvent | None]]  # (token id, the record of its creation)
    joins: list[AuditEvent]


TOKEN_CREATED = ("token.created", "token.rotated", "token.imported")


def node_story(node_id: int, node, records: QuerySet) -> NodeStory:
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

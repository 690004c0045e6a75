"""``{% undo_join_for operation %}`` and ``{% undo_join_for node=node %}``: the button that undoes a
failed join attempt (workflows.undo_join) on the join's page and on the machine's page, and on
the page of the reset it started, the join again.

A tag rather than the views' context because operations/ and nodes/ sit below workflows/ (the
layer rule). Who may press it is the page's ``can_operate`` (core.permissions, in the view) and,
again, the POST's own check.
"""

from __future__ import annotations

from django import template

from nodes.models import Node
from operations.models import Operation
from workflows import undo_join

register = template.Library()


@register.inclusion_tag("daytwo/_undo_join.html", takes_context=True)
def undo_join_for(context: template.Context, operation: Operation | None = None, node: Node | None = None) -> dict:
    if not context.get("can_operate"):
        return {}
    if operation is not None:
        return {"offers": undo_join.offers_for(operation), "rejoin": undo_join.rejoin_for(operation)}
    made = undo_join.offer(node) if node is not None else None
    return {"offers": [made] if made is not None else []}

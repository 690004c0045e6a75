"""``{% next_step_after operation %}``: the operation page's link to its cluster's next step.

A tag rather than the operation view's context because operations/ sits below the apps that
know the steps (the layer rule); the step itself is workflows.next_step's.
"""

from __future__ import annotations

from django import template

from operations.models import Operation
from workflows.next_step import after_operation

register = template.Library()


@register.inclusion_tag("clusters/_next_step_link.html")
def next_step_after(operation: Operation) -> dict:
    return {"step": after_operation(operation), "cluster": operation.cluster}

"""``{% preconditions_of cluster as preconditions %}``: whether each action the cluster page offers
can work now (``clusters.preconditions``, and the reset of a machine, ``workflows.reset``), for the
page's partials that show an action or, when it cannot work, the action disabled with its reason."""

from __future__ import annotations

from django import template

from clusters import preconditions
from clusters.models import Cluster
from workflows import reset

register = template.Library()


# Kept on the cluster object the view put in the context, which lives for one request: the
# cluster page's partials (tokens, day two) each ask, and the checks (queries) run once.
_CACHED = "_page_preconditions"


@register.simple_tag
def preconditions_of(cluster: Cluster) -> dict[str, preconditions.Precondition]:
    found = getattr(cluster, _CACHED, None)
    if found is None:
        found = preconditions.for_cluster(cluster) | {"reset": reset.reset_precondition(cluster)}
        setattr(cluster, _CACHED, found)
    return found

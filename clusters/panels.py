"""What the cluster page shows, one panel per app.

Each app owns its panel: a function ``(cluster, user) -> dict`` adding to the page's context,
and a template ``<app>/_cluster_<panel>.html`` included by ``clusters/cluster_detail.html``.
"""

from __future__ import annotations

from django.utils.module_loading import import_string

from core.permissions import ADMIN, OPERATE, can

PANELS = [
    "nodes.panels.cluster_panel",
    "tokens.panels.cluster_panel",
    "operations.panels.cluster_panel",
    "audit.panels.cluster_panel",
]


def cluster_panels(cluster, user) -> dict:
    context = {
        "cluster": cluster,
        "authorities": cluster.authorities.order_by("name"),
        "can_operate": can(user, OPERATE, cluster),
        "can_admin": can(user, ADMIN, cluster),
    }
    for path in PANELS:
        context.update(import_string(path)(cluster, user))
    return context

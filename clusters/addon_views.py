"""The cluster page's Add-ons section, asked for by the page after it is shown (htmx) and again
while something rolls out: the read is clusters/addons.py's, cached and time-bound."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clusters import addons
from clusters.pages import cluster_for
from core.permissions import OPERATE, VIEW, can


@login_required
@require_GET
def cluster_addons(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, VIEW)
    context = {
        "cluster": cluster,
        "addons_health": addons.health(cluster),
        "addons_poll_seconds": addons.POLL_SECONDS,
        "can_operate": can(request.user, OPERATE, cluster),
    }
    return render(request, "clusters/_addons_read.html", context)

"""The cluster page's control-plane endpoint status (issue 21), asked for by the page after it is
shown (htmx): which machine holds the VIP and each backend's health, time-bound
(workflows.endpoint.read_status), read-only."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clusters.pages import cluster_for
from core.permissions import VIEW
from workflows import endpoint


@login_required
@require_GET
def endpoint_status(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, VIEW)
    status = endpoint.read_status(cluster) if cluster.endpoint_spec.installs_anything else None
    return render(request, "clusters/_endpoint_read.html", {"cluster": cluster, "endpoint_status": status})

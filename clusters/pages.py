"""What every page about a cluster starts with: the cluster the person may act on, and the way back
to its page. One place for the lookup, so every app's views refuse the same way (404 for a cluster
the person may not see, core.permissions)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from clusters.models import Cluster
from core.permissions import get_object_for


def cluster_for(request: HttpRequest, name: str, action: str) -> Cluster:
    """The cluster ``name`` if the request's user may do ``action`` on it."""
    return get_object_for(request.user, action, Cluster.objects.select_related("team"), name=name)


def back_to_cluster(cluster: Cluster, anchor: str = "") -> HttpResponse:
    """A redirect to the cluster's page, at ``anchor`` if given."""
    return redirect(cluster.get_absolute_url() + (f"#{anchor}" if anchor else ""))

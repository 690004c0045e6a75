from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from clusters.forms import ClusterForm
from clusters.models import Cluster
from clusters.panels import cluster_panels
from clusters.services import create_cluster
from core.permissions import OPERATE, VIEW, get_object_for, restrict, teams_for


@login_required
def cluster_list(request: HttpRequest) -> HttpResponse:
    clusters = restrict(Cluster.objects.all(), request.user, VIEW).select_related("team")
    can_create = teams_for(request.user, OPERATE).exists()
    return render(request, "clusters/cluster_list.html", {"clusters": clusters, "can_create": can_create})


@login_required
def cluster_create(request: HttpRequest) -> HttpResponse:
    if not teams_for(request.user, OPERATE).exists():
        raise PermissionDenied("creating a cluster needs the operator or admin role in a team")
    form = ClusterForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        operation = create_cluster(form.save(commit=False), user=request.user)
        return redirect(operation)
    return render(request, "clusters/cluster_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def cluster_detail(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_for(request.user, VIEW, Cluster.objects.select_related("team"), name=name)
    return render(request, "clusters/cluster_detail.html", cluster_panels(cluster, request.user))

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from audit.models import AuditEvent
from clusters.forms import ClusterForm
from clusters.models import Cluster
from clusters.services import create_cluster


@login_required
def cluster_list(request: HttpRequest) -> HttpResponse:
    clusters = Cluster.objects.visible_to(request.user).select_related("team")
    return render(request, "clusters/cluster_list.html", {"clusters": clusters})


@login_required
@permission_required("clusters.add_cluster", raise_exception=True)
def cluster_create(request: HttpRequest) -> HttpResponse:
    form = ClusterForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        operation = create_cluster(form.save(commit=False), user=request.user)
        return redirect(operation)
    return render(request, "clusters/cluster_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def cluster_detail(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_or_404(Cluster.objects.visible_to(request.user), name=name)
    context = {
        "cluster": cluster,
        "authorities": cluster.authorities.order_by("name"),
        "nodes": cluster.nodes.all(),
        "tokens": cluster.tokens.select_related("node", "created_by"),
        "operations": cluster.operations.select_related("requested_by")[:50],
        "audit_events": AuditEvent.objects.filter(cluster=cluster).select_related("actor")[:100],
    }
    return render(request, "clusters/cluster_detail.html", context)

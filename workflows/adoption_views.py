from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.permissions import ADMIN, teams_for
from workflows.adoption import AdoptionError, adopt_cluster
from workflows.adoption_forms import AdoptClusterForm


@login_required
def adopt(request: HttpRequest) -> HttpResponse:
    """Register a cluster Kubeboard did not create (admins of a team: it stores an admin credential)."""
    if not teams_for(request.user, ADMIN).exists():
        raise PermissionDenied("adopting a cluster needs the admin role in a team")
    form = AdoptClusterForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            cluster = adopt_cluster(
                name=data["name"], team=data["team"], kubeconfig=data["kubeconfig"], user=request.user
            )
        except AdoptionError as exc:
            field = "kubeconfig_text" if exc.field == "kubeconfig" else exc.field
            form.add_error(field if field in form.fields else None, str(exc))
        else:
            messages.success(request, f"Cluster {cluster.name} adopted; its tokens were synced.")
            return redirect("tokens:list", name=cluster.name)
    return render(request, "clusters/cluster_adopt.html", {"form": form}, status=400 if form.errors else 200)

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string

from clusters import live, nodestatus
from clusters.forms import ClusterForm, DeleteClusterForm
from clusters.health import health, with_health
from clusters.models import Cluster
from clusters.panels import cluster_panels
from clusters.services import ClusterDeleteRefused, create_cluster, delete_cluster, deletion_summary
from core.permissions import ADMIN, OPERATE, VIEW, can_manage_accounts, get_object_for, restrict, teams_for
from teams.forms import TeamForm


def _team_guide(user) -> dict:
    """What the first hour needs to know about teams: a cluster needs one, and who can make it."""
    operable = teams_for(user, OPERATE)
    return {
        "can_create": operable.exists(),
        "can_adopt": teams_for(user, ADMIN).exists(),
        "no_team_yet": not Group.objects.exists(),
        "can_create_team": can_manage_accounts(user),
        "team_form": TeamForm() if can_manage_accounts(user) else None,
        # A viewer is told to ask for a role, not to be added to a team they are already in.
        "viewer_teams": []
        if operable.exists()
        else list(teams_for(user, VIEW).order_by("name").values_list("name", flat=True)),
    }


@login_required
def cluster_list(request: HttpRequest) -> HttpResponse:
    clusters = with_health(restrict(Cluster.objects.all(), request.user, VIEW).select_related("team"))
    return render(request, "clusters/cluster_list.html", {"rows": health(clusters), **_team_guide(request.user)})


@login_required
def cluster_create(request: HttpRequest) -> HttpResponse:
    guide = _team_guide(request.user)
    if not guide["can_create"] and not guide["can_create_team"]:
        raise PermissionDenied("creating a cluster needs the operator or admin role in a team")
    form = ClusterForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        operation = create_cluster(
            form.save(commit=False), user=request.user, pod_network_manifest=form.custom_manifest
        )
        return redirect(operation)
    context = {"form": form, **guide}
    return render(request, "clusters/cluster_form.html", context, status=400 if form.errors else 200)


@login_required
def cluster_detail(request: HttpRequest, name: str) -> HttpResponse:
    cluster = get_object_for(request.user, VIEW, live.clusters(), name=name)
    # The versions first: whatever changes while the panels are read shows at the first poll.
    live_versions = live.versions(cluster)
    context = cluster_panels(cluster, request.user) | {
        "live_versions": live_versions,
        "live_selectors": live.selectors(),
        "live_poll_ms": round(live.POLL_SECONDS * 1000),
    }
    return render(request, "clusters/cluster_detail.html", context)


@login_required
def cluster_live(request: HttpRequest, name: str) -> HttpResponse:
    """The page's poll (every 1.5 s): nothing when no live part changed, else only the changed parts."""
    cluster = get_object_for(request.user, VIEW, live.clusters(), name=name)
    # An open page keeps the summary's Node status live: at most one refresh per cluster per
    # interval, queued by whichever poll claims it first (no query when none is due).
    nodestatus.request_refresh(cluster)
    update = live.changes(cluster, request.user, request.GET)
    if update is None:
        return HttpResponse(status=204)
    parts = [render_to_string(template, context, request=request) for template, context in update.parts]
    return render(request, "clusters/_live_update.html", {"parts": parts, "live_versions": update.versions})


@login_required
def cluster_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Superusers only: remove a cluster from Kubeboard (never touching its machines), confirmed
    by typing its name; the page says first what goes and what stays."""
    cluster = get_object_for(request.user, VIEW, Cluster.objects.select_related("team"), name=name)
    if not request.user.is_superuser:
        raise PermissionDenied("only a superuser deletes a cluster")
    form = DeleteClusterForm(request.POST if request.method == "POST" else None, cluster=cluster)
    if request.method == "POST" and form.is_valid():
        try:
            removed = delete_cluster(cluster, user=request.user)
        except ClusterDeleteRefused as exc:
            form.add_error(None, f"Not deleted: {exc}.")
        else:
            total = sum(removed.values())
            messages.success(
                request,
                f"Cluster {name} deleted from Kubeboard ({total} related record{'s' if total != 1 else ''}); "
                "no machine was contacted. Its audit history stays.",
            )
            return redirect("clusters:list")
    context = {"cluster": cluster, "form": form, "summary": deletion_summary(cluster)}
    return render(request, "clusters/cluster_confirm_delete.html", context, status=400 if form.errors else 200)

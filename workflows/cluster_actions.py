"""The cluster page's workflow actions: initialize, join, read back and the pod network.

Thin: a form validates, a service refuses or starts an operation, the person lands on the
operation page (live) or back on the cluster page with the reason and what to do. Their routes
keep the names they had in clusters/ (``clusters:initialize``, ``clusters:join``, ``clusters:read-back``;
``clusters:pod-network`` joined them): config/urls.py
puts ``cluster_urlpatterns`` (workflows/urls.py) into the clusters namespace.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from clusters.pages import back_to_cluster, cluster_for
from core import feedback
from core.permissions import OPERATE
from operations.services import OperationStateError
from workflows.cluster_forms import InitForm, JoinForm
from workflows.init import InitRefused, start_init
from workflows.join import JoinRefused, start_join
from workflows.network import PodNetworkRefused, start_pod_network
from workflows.readback import ReadBackRefused, start_read_back


@login_required
@require_POST
def initialize(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = InitForm(request.POST, cluster=cluster)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return back_to_cluster(cluster, "cluster-actions")
    try:
        operation = start_init(cluster, form.cleaned_data["node"], user=request.user, skip=form.cleaned_data["skip"])
    except (InitRefused, OperationStateError) as exc:
        feedback.refused(request, exc)
        return back_to_cluster(cluster, "cluster-actions")
    return redirect(operation)


@login_required
@require_POST
def join(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = JoinForm(request.POST, cluster=cluster)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return back_to_cluster(cluster, "join-actions")
    control_plane = form.cleaned_data["control_plane"]
    try:
        operation = start_join(
            cluster,
            list(form.cleaned_data["nodes"]),
            control_plane=control_plane,
            method=form.cleaned_data["method"] or "",
            user=request.user,
            skip=form.cleaned_data["skip"],
        )
    except (JoinRefused, OperationStateError) as exc:
        feedback.refused(request, exc)
        return back_to_cluster(cluster, "join-actions")
    return redirect(operation)


@login_required
@require_POST
def read_back(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    try:
        operation = start_read_back(cluster, user=request.user)
    except ReadBackRefused as exc:
        feedback.refused(request, exc)
        return back_to_cluster(cluster, "inventory")
    return redirect(operation)


@login_required
@require_POST
def pod_network(request: HttpRequest, name: str) -> HttpResponse:
    """Apply the cluster's saved pod network choice (the next step's button)."""
    cluster = cluster_for(request, name, OPERATE)
    try:
        operation = start_pod_network(
            cluster,
            cluster.pod_network,
            version=cluster.pod_network_version,
            image_registry=cluster.pod_network_registry,
            user=request.user,
        )
    except (PodNetworkRefused, OperationStateError) as exc:
        feedback.refused(request, exc)
        return back_to_cluster(cluster, "pod-network")
    return redirect(operation)

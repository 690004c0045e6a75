"""The cluster page's own actions: engine settings, pod network choice, admin kubeconfig, read-back (initialize and join,
which span nouns, are workflows/cluster_actions.py).

Thin: a form validates, a service refuses or starts an operation, the person lands on the
operation page (live) or back on the cluster page with the reason and what to do.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

import kube
from audit.services import refusals
from clusters import apiaccess
from clusters.action_forms import EngineSettingsForm, KubeconfigForm, PodNetworkForm
from clusters.pages import back_to_cluster, cluster_for
from clusters.services import save_engine_settings, save_pod_network
from core import feedback
from core.permissions import ADMIN, OPERATE


@login_required
@require_POST
def engine_settings(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = EngineSettingsForm(request.POST, instance=cluster)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return back_to_cluster(cluster, "engine-settings")
    save_engine_settings(form, user=request.user)
    messages.success(request, "Settings saved; they apply to the next initialize or join.")
    return back_to_cluster(cluster, "engine-settings")


@login_required
@require_POST
def pod_network_settings(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = PodNetworkForm(request.POST, request.FILES, instance=cluster)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return back_to_cluster(cluster, "pod-network")
    cluster = save_pod_network(form, user=request.user)
    then = "; the next step applies it." if cluster.pod_network_wanted else "."
    messages.success(request, f"Pod network set to {cluster.pod_network_label}{then}")
    return back_to_cluster(cluster, "pod-network")


@login_required
@require_POST
def admin_kubeconfig(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, ADMIN)
    form = KubeconfigForm(request.POST)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return back_to_cluster(cluster, "admin-kubeconfig")
    try:
        # Refused (no CA key here) or failed on the way: audited as the issue it was not.
        with refusals(
            "cluster.admin_kubeconfig_issued",
            kube.ClusterNotConnectable,
            failed=(kube.KubeAPIError,),
            actor=request.user,
            obj=cluster,
        ):
            text = apiaccess.issue_admin_kubeconfig(cluster, user=request.user, ttl=form.cleaned_ttl())
    except kube.KubeAPIError as exc:
        feedback.refused(request, exc)
        return back_to_cluster(cluster, "admin-kubeconfig")
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{cluster.name}-admin.conf"'
    return response

"""Prepare machine from the cluster page (ticked machines), the machine page (one) and the
cluster's preparation settings: thin, a refusal goes back with the reason, a start to the
operation's page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from clusters.pages import back_to_cluster, cluster_for
from core import feedback
from core.permissions import OPERATE
from workflows import prepare
from workflows.prepare_forms import PrepareForm, PrepareSettingsForm


@login_required
@require_POST
def prepare_machines(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = PrepareForm(request.POST, cluster=cluster)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return back_to_cluster(cluster, "prepare")
    try:
        operation = prepare.start_prepare(
            cluster, list(form.cleaned_data["nodes"]), user=request.user, dry_run=form.cleaned_data["dry_run"]
        )
    except prepare.PrepareRefused as exc:
        feedback.refused(request, exc)
        return back_to_cluster(cluster, "prepare")
    return redirect(operation)


@login_required
@require_POST
def prepare_settings(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = PrepareSettingsForm(request.POST, instance=prepare.settings_for(cluster))
    if not form.is_valid():
        feedback.form_errors(request, form)
        return back_to_cluster(cluster, "prepare")
    prepare.save_settings(form, user=request.user)
    return back_to_cluster(cluster, "prepare")

"""The cluster page's Cordon, Uncordon and Drain of a joined machine (workflows.scheduling): thin,
a refusal goes back to the summary with the reason and what to do, a start to the operation page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from clusters.pages import back_to_cluster, cluster_for
from core import feedback
from core.permissions import OPERATE
from operations.services import OperationStateError
from workflows.scheduling import SchedulingRefused, start


@login_required
@require_POST
def node_scheduling(request: HttpRequest, name: str, node: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    machine = get_object_or_404(cluster.nodes, name=node)
    try:
        operation = start(machine, request.POST.get("action", ""), user=request.user)
    except (SchedulingRefused, OperationStateError) as exc:
        feedback.refused(request, exc)
        return back_to_cluster(cluster, "summary")
    return redirect(operation)

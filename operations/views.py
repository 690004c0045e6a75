from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from clusters.models import Cluster
from operations.models import Operation
from operations.services import OperationStateError, reap_operations, resume_operation


def _visible_operation(request: HttpRequest, pk: int) -> Operation:
    visible = Operation.objects.filter(cluster__in=Cluster.objects.visible_to(request.user))
    return get_object_or_404(visible.select_related("cluster", "requested_by"), pk=pk)


@login_required
def operation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    operation = _visible_operation(request, pk)
    if operation.status == Operation.Status.RUNNING and reap_operations():
        operation.refresh_from_db()
    return render(
        request,
        "operations/operation_detail.html",
        {"operation": operation, "cluster": operation.cluster, "phases": operation.phases.all()},
    )


@login_required
@require_POST
@permission_required("operations.change_operation", raise_exception=True)
def operation_resume(request: HttpRequest, pk: int) -> HttpResponse:
    operation = _visible_operation(request, pk)
    try:
        resume_operation(operation, user=request.user)
    except OperationStateError as exc:
        messages.error(request, str(exc))
    return redirect(operation)

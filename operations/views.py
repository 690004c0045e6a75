from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.permissions import OPERATE, VIEW, can, get_object_for
from operations.models import Operation
from operations.services import OperationStateError, reap_operations, resume_operation


@login_required
def operation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_for(request.user, VIEW, Operation.objects.select_related("cluster", "requested_by"), pk=pk)
    if operation.status == Operation.Status.RUNNING and reap_operations():
        operation.refresh_from_db()
    return render(
        request,
        "operations/operation_detail.html",
        {
            "operation": operation,
            "cluster": operation.cluster,
            "phases": operation.phases.all(),
            "can_operate": can(request.user, OPERATE, operation),
        },
    )


@login_required
@require_POST
def operation_resume(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_for(request.user, OPERATE, Operation.objects.select_related("cluster"), pk=pk)
    try:
        resume_operation(operation, user=request.user)
    except OperationStateError as exc:
        messages.error(request, str(exc))
    return redirect(operation)

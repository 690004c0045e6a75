from __future__ import annotations

from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.permissions import OPERATE, VIEW, can, get_object_for
from operations.formatting import event_line
from operations.forms import ResumeForm
from operations.models import Event, Operation, PhaseRun
from operations.services import OperationStateError, cancel_operation, reap_operations, resume_operation

LOG_CHUNK = 2000


def pipeline(operation: Operation) -> list[dict]:
    """The phases as the page shows them: cluster-level phases alone, consecutive phases of one
    group (a node) together, in plan order."""
    entries: list[dict] = []
    for phase in operation.phases.select_related("node").prefetch_related("attempts").order_by("order"):
        last = entries[-1] if entries else None
        if phase.group and last is not None and last["group"] == phase.group:
            last["phases"].append(phase)
        else:
            entries.append({"group": phase.group, "node": phase.node, "phases": [phase]})
    return entries


@login_required
def operation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_for(request.user, VIEW, Operation.objects.select_related("cluster", "requested_by"), pk=pk)
    if operation.is_active and reap_operations():
        operation.refresh_from_db()
    phases = list(operation.phases.all())
    can_operate = can(request.user, OPERATE, operation)
    return render(
        request,
        "operations/operation_detail.html",
        {
            "operation": operation,
            "cluster": operation.cluster,
            "phases": phases,
            "pipeline": pipeline(operation),
            "done_count": sum(phase.status in PhaseRun.DONE_STATUSES for phase in phases),
            "hints": [phase for phase in phases if phase.hint],
            "can_operate": can_operate,
            "resume_form": ResumeForm(operation) if can_operate else None,
            "server_now": timezone.now(),
        },
    )


@login_required
@require_POST
def operation_resume(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_for(request.user, OPERATE, Operation.objects.select_related("cluster"), pk=pk)
    form = ResumeForm(operation, request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(
                    request, f"Not resumed: {error}" if field == "__all__" else f"Not resumed ({field}): {error}"
                )
        return redirect(operation)
    try:
        resume_operation(
            operation,
            user=request.user,
            skip=form.cleaned_data["skip"],
            skip_reason=form.cleaned_data["reason"].strip(),
        )
    except OperationStateError as exc:
        messages.error(request, str(exc))
    return redirect(operation)


@login_required
@require_POST
def operation_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    operation = get_object_for(request.user, OPERATE, Operation.objects.select_related("cluster"), pk=pk)
    try:
        operation = cancel_operation(operation, user=request.user)
    except OperationStateError as exc:
        messages.error(request, str(exc))
    else:
        if operation.status == Operation.Status.RUNNING:
            messages.info(request, "Cancel requested: the running phase stops within a second or two.")
    return redirect(operation)


@login_required
def operation_log_text(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The whole log as plain text, streamed in chunks (an operation may hold many events)."""
    operation = get_object_for(request.user, VIEW, Operation.objects.select_related("cluster"), pk=pk)

    header = f"# {operation} — {operation.get_status_display()}\n"

    def chunk_after(after: int) -> list[tuple[int, str]]:
        rows = Event.objects.filter(operation_id=operation.pk, seq__gt=after).order_by("seq")[:LOG_CHUNK]
        return [(row.seq, event_line(row) + "\n") for row in rows]

    async def lines() -> AsyncIterator[str]:
        # Asynchronous, so daphne streams it chunk by chunk instead of building it in memory.
        yield header
        after = 0
        while True:
            chunk = await sync_to_async(chunk_after)(after)
            for _, text in chunk:
                yield text
            if len(chunk) < LOG_CHUNK:
                return
            after = chunk[-1][0]

    response = StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="operation-{operation.pk}.log.txt"'
    return response

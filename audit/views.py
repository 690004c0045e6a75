"""The bootstrap history: a filtered, keyset-paged timeline, its streamed exports, and a node's story."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.export import FORMATS, streaming_response
from audit.forms import HistoryFilterForm
from audit.queries import history_of, keyset_page, visible_records
from audit.siem import stream_status
from audit.verification import latest


def _filtered(request: HttpRequest):
    form = HistoryFilterForm(request.GET, user=request.user)  # no filter: everything the user may see
    if not form.is_valid():
        return form, None
    return form, form.apply(visible_records(request.user))


@login_required
def history(request: HttpRequest) -> HttpResponse:
    form, records = _filtered(request)
    page = None
    if records is not None:
        page = keyset_page(records, before=form.cleaned_data.get("before"), after=form.cleaned_data.get("after"))
    status = 400 if form.errors else 200
    context = {"form": form, "page": page, "story": None, "verification": latest()}
    if request.user.is_superuser:  # the SIEM stream's lag concerns the whole trail
        context["stream"] = stream_status()
    return render(request, "audit/history.html", context, status=status)


@login_required
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    if fmt not in FORMATS:
        raise Http404("unknown export format")
    form, records = _filtered(request)
    if records is None:
        return render(request, "audit/history.html", {"form": form, "page": None, "story": None}, status=400)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return streaming_response(request, records, fmt, f"kubeboard-audit-{stamp}")


@login_required
def node_history(request: HttpRequest, node_id: int) -> HttpResponse:
    history = history_of("node")  # registered by the nodes app (nodes/history.py)
    query = request.GET.copy()
    query["node"] = str(node_id)
    form = HistoryFilterForm(query, user=request.user)
    if not form.is_valid():
        return render(request, "audit/history.html", {"form": form, "page": None, "story": None}, status=400)
    records = form.apply(visible_records(request.user))
    node = history.find(request.user, node_id)
    if node is None and not records.exists():
        raise Http404("No machine with this id is visible to you.")
    page = keyset_page(records, before=form.cleaned_data.get("before"), after=form.cleaned_data.get("after"))
    story = history.story(node_id, node, records.combined())
    return render(request, "audit/history.html", {"form": form, "page": page, "story": story})

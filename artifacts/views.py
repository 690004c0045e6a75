"""The Artifact sets page: which sets Kubeboard holds, and (superusers) an upload. Thin: the
import and its checks are artifacts.services; the bound is artifacts.uploads."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from artifacts.forms import UploadForm
from artifacts.models import ArtifactSet
from artifacts.services import ImportRefused, import_archive
from core import feedback
from core.permissions import can_manage_artifacts, can_see_artifacts


@login_required
def artifact_list(request: HttpRequest) -> HttpResponse:
    if not can_see_artifacts(request.user):
        raise PermissionDenied("sign in to see the artifact sets")
    return render(
        request,
        "artifacts/list.html",
        {
            "sets": ArtifactSet.objects.prefetch_related("files"),
            "form": UploadForm() if can_manage_artifacts(request.user) else None,
            "limit": settings.ARTIFACT_MAX_BYTES,
        },
    )


@login_required
@require_POST
def artifact_upload(request: HttpRequest) -> HttpResponse:
    if not can_manage_artifacts(request.user):
        raise PermissionDenied("importing an artifact set is a superuser's")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > int(settings.ARTIFACT_MAX_BYTES):  # artifacts.uploads.BoundedUpload stopped reading it
        messages.error(
            request,
            f"The archive is larger than {settings.ARTIFACT_MAX_BYTES // (1024 * 1024)} MiB — import it from a "
            "directory with manage.py artifacts import DIR, or raise KUBEBOARD_ARTIFACT_MAX_BYTES.",
        )
        return redirect("artifacts:list")
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return redirect("artifacts:list")
    upload = form.cleaned_data["archive"]
    try:
        artifact_set = import_archive(upload, name=upload.name, user=request.user)
    except ImportRefused as exc:
        feedback.refused(request, exc)
        return redirect("artifacts:list")
    messages.success(request, f"Imported {artifact_set.name}: {artifact_set.files.count()} files, each checked.")
    return redirect("artifacts:list")

"""The Artifact sets pages: which sets Kubeboard holds, one set's files, and (superusers) an upload
and a deletion. Thin: the import, the deletion and their checks are artifacts.services; the bound
is artifacts.uploads."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from artifacts.forms import DeleteSetForm, UploadForm
from artifacts.models import ArtifactSet
from artifacts.services import (
    DeleteRefused,
    ImportRefused,
    delete_set,
    get_set,
    import_archive,
    leftover_directories,
    refusal_of,
    uses_of,
)
from core import feedback
from core.permissions import can_manage_artifacts, can_see_artifacts
from kubeadm.prepare import ARTIFACTS_DIR as MACHINE_ARTIFACTS_DIR


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
            "leftovers": leftover_directories() if can_manage_artifacts(request.user) else [],
            "store": settings.ARTIFACTS_DIR,
        },
    )


def _set_or_404(name: str) -> ArtifactSet:
    found = get_set(name)
    if found is None:
        raise Http404(f"Kubeboard holds no artifact set {name[:80]}")
    return found


@login_required
@require_GET
def artifact_detail(request: HttpRequest, name: str) -> HttpResponse:
    if not can_see_artifacts(request.user):
        raise PermissionDenied("sign in to see the artifact sets")
    artifact_set = _set_or_404(name)
    manage = can_manage_artifacts(request.user)
    # Which clusters use it names other teams' clusters: only those who may delete it see that.
    uses = uses_of(artifact_set) if manage else []
    return render(
        request,
        "artifacts/detail.html",
        {
            "set": artifact_set,
            "files": artifact_set.files.all(),
            "manage": manage,
            "blocking": [use for use in uses if use.blocking],
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def artifact_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Superusers only (as importing): a page that says what goes and what stays, and what still
    uses the set (then the deletion is refused); the person types the set's name to confirm."""
    if not can_manage_artifacts(request.user):
        raise PermissionDenied("deleting an artifact set is a superuser's")
    artifact_set = _set_or_404(name)
    form = DeleteSetForm(request.POST if request.method == "POST" else None, artifact_set=artifact_set)
    refusal = None
    if request.method == "POST" and form.is_valid():
        try:
            deleted = delete_set(artifact_set, user=request.user)
        except DeleteRefused as exc:
            refusal = exc
        else:
            messages.success(
                request,
                f"Deleted artifact set {deleted.name}: {deleted.files} files, {filesizeformat(deleted.bytes)} "
                f"freed. Machines keep the copies Prepare pushed to {MACHINE_ARTIFACTS_DIR}/{deleted.name}.",
            )
            if deleted.left:
                messages.warning(request, f"The set's records are deleted, but {deleted.left}.")
            return redirect("artifacts:list")
    uses = uses_of(artifact_set)
    if refusal is None and any(use.blocking for use in uses):
        refusal = refusal_of(artifact_set.name, uses)  # said before anyone types the name
    context = {
        "set": artifact_set,
        "form": form,
        "refusal": refusal,
        "notes": [use for use in uses if not use.blocking],
        "machine_dir": f"{MACHINE_ARTIFACTS_DIR}/{artifact_set.name}",
    }
    status = 400 if form.errors or (request.method == "POST" and refusal) else 200
    return render(request, "artifacts/confirm_delete.html", context, status=status)


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

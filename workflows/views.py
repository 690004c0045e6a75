"""Day-two pages: upgrade plan, certificates, etcd backups, configuration, reset, import.

Thin: permissions through core.permissions, forms validate, services in workflows/ refuse (with
the reason and what to do) or start an operation, whose live page the person lands on.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from clusters import preconditions
from clusters.models import Cluster
from clusters.pages import cluster_for
from core import feedback
from core.permissions import ADMIN, OPERATE, VIEW, can, get_object_for, teams_for
from kubeadm import config as kubeadm_config
from kubeadm.errors import KubeadmError
from workflows import backup, certificates, config_io, reset, services, upgrade
from workflows import undo_join as undo_join_service
from workflows.forms import (
    BackupScheduleForm,
    DayTwoSettingsForm,
    ImportForm,
    RenewalPolicyForm,
    RenewForm,
    ResetForm,
    RestoreForm,
    UpgradeForm,
)
from workflows.models import BackupSchedule, CertificateReport, EtcdSnapshot, RenewalPolicy, StoredConfiguration


def _context(request: HttpRequest, cluster: Cluster, **extra) -> dict:
    return {
        "cluster": cluster,
        "can_operate": can(request.user, OPERATE, cluster),
        "can_admin": can(request.user, ADMIN, cluster),
        # Each action offered only when it can work, else shown disabled with the reason.
        "preconditions": preconditions.for_cluster(cluster),
        **extra,
    }


# --- upgrade ------------------------------------------------------------------------------------------


@login_required
def upgrade_plan(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, VIEW)
    target = request.GET.get("target", "").strip()[:32]
    plan = upgrade.build_plan(cluster, target)
    tools = backup.settings_for(cluster)
    running = cluster.operations.filter(kind=upgrade.KIND).order_by("-created_at", "-id").first()
    form = UpgradeForm(initial={"batch_size": tools.upgrade_batch_size})
    return render(
        request,
        "daytwo/upgrade_plan.html",
        _context(
            request,
            cluster,
            plan=plan,
            form=form,
            tools=tools,
            last_upgrade=running,
            settings_form=DayTwoSettingsForm(instance=tools),
        ),  # fmt: skip
    )


@login_required
@require_POST
def upgrade_start(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = UpgradeForm(request.POST)
    back = reverse("daytwo:upgrade", args=[cluster.name])
    if not form.is_valid():
        feedback.form_errors(request, form)
        return redirect(back)
    target = form.cleaned_data["target"]
    try:
        operation = upgrade.start_upgrade(
            cluster, target, user=request.user, batch_size=form.cleaned_data["batch_size"]
        )
    except upgrade.UpgradeRefused as exc:
        feedback.refused(request, exc)
        return redirect(f"{back}?target={target}")
    return redirect(operation)


@login_required
@require_POST
def settings(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, ADMIN)
    form = DayTwoSettingsForm(request.POST, instance=backup.settings_for(cluster))
    if form.is_valid():
        services.save_settings(form, user=request.user)
        messages.success(request, "Day-two settings saved.")
    else:
        feedback.form_errors(request, form)
    return redirect(reverse("daytwo:upgrade", args=[cluster.name]) + "#day2-settings")


# --- reset ----------------------------------------------------------------------------------------------


@login_required
@require_POST
def reset_node(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = ResetForm(request.POST, cluster=cluster)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return redirect(cluster.get_absolute_url() + "#day2")
    try:
        operation = reset.start_reset(
            form.cleaned_data["node"], user=request.user, confirm=form.cleaned_data["confirm"]
        )
    except reset.ResetRefused as exc:
        feedback.refused(request, exc)
        return redirect(cluster.get_absolute_url() + "#day2")
    return redirect(operation)


@login_required
@require_POST
def undo_join(request: HttpRequest, name: str, node: str) -> HttpResponse:
    """The failed join's page and the machine's page: one button, the reset of that machine."""
    cluster = cluster_for(request, name, OPERATE)
    machine = get_object_or_404(cluster.nodes.select_related("cluster"), name=node)
    try:
        operation = undo_join_service.start_undo_join(machine, user=request.user)
    except reset.ResetRefused as exc:
        feedback.refused(request, exc)
        return redirect(machine)
    return redirect(operation)


# --- certificates ---------------------------------------------------------------------------------------


@login_required
def certificate_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, VIEW)
    reports = list(
        CertificateReport.objects.filter(node__cluster=cluster).select_related("node").order_by("node__name")
    )
    policy = RenewalPolicy.objects.filter(cluster=cluster).first() or RenewalPolicy(cluster=cluster)
    return render(
        request,
        "daytwo/certificates.html",
        _context(
            request,
            cluster,
            reports=reports,
            timeline=certificates.timeline(cluster),
            soonest=certificates.soonest_leaf(cluster),
            leaf_validity=kubeadm_config.DEFAULT_CERTIFICATE_VALIDITY,
            ca_validity=kubeadm_config.DEFAULT_CA_CERTIFICATE_VALIDITY,
            renew_form=RenewForm(),
            policy=policy,
            policy_form=RenewalPolicyForm(instance=policy),
            operations=cluster.operations.filter(
                kind__in=(certificates.INVENTORY_KIND, certificates.RENEW_KIND)
            ).order_by("-created_at", "-id")[:10],
        ),
    )


@login_required
@require_POST
def certificates_read(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    try:
        return redirect(certificates.start_inventory(cluster, user=request.user))
    except certificates.CertificatesRefused as exc:
        feedback.refused(request, exc)
        return redirect("daytwo:certificates", name=cluster.name)


@login_required
@require_POST
def certificates_renew(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    form = RenewForm(request.POST)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return redirect("daytwo:certificates", name=cluster.name)
    try:
        operation = certificates.start_renewal(
            cluster, names=form.cleaned_data["names"], add_sans=form.cleaned_data["add_sans"], user=request.user
        )
    except certificates.CertificatesRefused as exc:
        feedback.refused(request, exc)
        return redirect("daytwo:certificates", name=cluster.name)
    return redirect(operation)


@login_required
@require_POST
def renewal_policy(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, ADMIN)
    policy = RenewalPolicy.objects.filter(cluster=cluster).first() or RenewalPolicy(cluster=cluster)
    form = RenewalPolicyForm(request.POST, instance=policy)
    if form.is_valid():
        services.save_renewal_policy(form, user=request.user)
        messages.success(request, "Renewal policy saved.")
    else:
        feedback.form_errors(request, form)
    return redirect(reverse("daytwo:certificates", args=[cluster.name]) + "#renewal-policy")


# --- etcd backups -----------------------------------------------------------------------------------------


@login_required
def backup_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, VIEW)
    schedule = BackupSchedule.objects.filter(cluster=cluster).first() or BackupSchedule(cluster=cluster)
    return render(
        request,
        "daytwo/backups.html",
        _context(
            request,
            cluster,
            snapshots=EtcdSnapshot.objects.filter(cluster=cluster).select_related("created_by", "operation"),
            schedule=schedule,
            schedule_form=BackupScheduleForm(instance=schedule),
            restore_form=RestoreForm(),
            single_control_plane=len(backup.joined_control_planes(cluster)) == 1,
            operations=cluster.operations.filter(kind__in=(backup.SNAPSHOT_KIND, backup.RESTORE_KIND)).order_by(
                "-created_at", "-id"
            )[:10],
        ),
    )


def _snapshot(request: HttpRequest, name: str, pk: int, action: str) -> EtcdSnapshot:
    return get_object_for(
        request.user, action, EtcdSnapshot.objects.select_related("cluster"), cluster__name=name, pk=pk
    )


@login_required
@require_POST
def snapshot_take(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, OPERATE)
    try:
        return redirect(backup.start_snapshot(cluster, user=request.user))
    except backup.BackupRefused as exc:
        feedback.refused(request, exc)
        return redirect("daytwo:backups", name=cluster.name)


@login_required
@require_POST
def backup_schedule(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, ADMIN)
    schedule = BackupSchedule.objects.filter(cluster=cluster).first() or BackupSchedule(cluster=cluster)
    form = BackupScheduleForm(request.POST, instance=schedule)
    if form.is_valid():
        services.save_backup_schedule(form, user=request.user)
        messages.success(request, "Backup schedule saved.")
    else:
        feedback.form_errors(request, form)
    return redirect(reverse("daytwo:backups", args=[cluster.name]) + "#schedule")


@login_required
@require_POST
def snapshot_download(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """The decrypted snapshot file (admins only, audited), checked against its checksum first."""
    snapshot = _snapshot(request, name, pk, ADMIN)
    try:
        backup.record_download(snapshot, user=request.user)
    except backup.SnapshotDamaged as exc:
        messages.error(request, f"{exc} — it was not sent; take a new snapshot")
        return redirect("daytwo:backups", name=name)
    # Under daphne an async stream (one piece in memory at a time); under WSGI a plain one.
    body = backup.averified_stream(snapshot) if isinstance(request, ASGIRequest) else backup.iter_chunks(snapshot)
    response = StreamingHttpResponse(body, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{snapshot.file_name}"'
    response["Content-Length"] = str(snapshot.size_bytes)
    response["X-Snapshot-SHA256"] = snapshot.sha256
    return response


@login_required
@require_POST
def snapshot_delete(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    snapshot = _snapshot(request, name, pk, ADMIN)
    backup.delete_snapshot(snapshot, user=request.user)
    messages.success(request, f"Snapshot #{pk} deleted.")
    return redirect("daytwo:backups", name=name)


@login_required
@require_POST
def snapshot_restore(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    snapshot = _snapshot(request, name, pk, ADMIN)
    form = RestoreForm(request.POST)
    if not form.is_valid():
        feedback.form_errors(request, form)
        return redirect("daytwo:backups", name=name)
    try:
        operation = backup.start_restore(
            snapshot.cluster, snapshot, user=request.user, confirm=form.cleaned_data["confirm"]
        )
    except backup.BackupRefused as exc:
        feedback.refused(request, exc)
        return redirect("daytwo:backups", name=name)
    return redirect(operation)


# --- configuration -----------------------------------------------------------------------------------------


@login_required
def configuration_page(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, VIEW)
    view = config_io.live_view(cluster)
    stored = StoredConfiguration.objects.filter(cluster=cluster).first()
    return render(request, "daytwo/configuration.html", _context(request, cluster, view=view, stored=stored))


@login_required
def configuration_export(request: HttpRequest, name: str) -> HttpResponse:
    cluster = cluster_for(request, name, VIEW)
    kubelet = request.GET.get("kubelet") == "1"
    try:
        text = config_io.export_text(cluster, kubelet=kubelet)
    except config_io.ExportRefused as exc:
        feedback.refused(request, exc)
        return redirect("daytwo:configuration", name=name)
    except Exception as exc:  # the live KubeletConfiguration could not be read
        messages.error(request, f"Export with the live KubeletConfiguration failed: {exc}")
        return redirect("daytwo:configuration", name=name)
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{cluster.name}-kubeadm.yaml"'
    return response


@login_required
def import_cluster(request: HttpRequest) -> HttpResponse:
    if not teams_for(request.user, OPERATE).exists():
        raise PermissionDenied("importing a cluster needs the operator or admin role in a team")
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    result, problems = None, []
    if request.method == "POST" and form.is_valid():
        text = form.cleaned_data["config_text"]
        try:
            result = config_io.parse_import(text)
        except KubeadmError as exc:
            problems = [{"field": getattr(exc, "field", "file"), "message": str(exc)}]
        if result is not None:
            problems = [{"field": e.field, "message": str(e)} for e in result.errors]
            cluster, refused = config_io.imported_cluster(
                result, name=form.cleaned_data["name"].strip(), team=form.cleaned_data["team"]
            )
            problems += [{"field": f, "message": m} for f, ms in refused.items() for m in ms]
            if not problems:
                operation = config_io.import_cluster(cluster, result, text, user=request.user)
                return redirect(operation)
    if problems:
        form.ask_for_secrets_again()
    status = 400 if (form.errors or problems) else 200
    return render(request, "daytwo/import.html", {"form": form, "result": result, "problems": problems}, status=status)

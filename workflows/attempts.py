"""Settings read when an attempt starts, and the files on a machine that were written with others.

init and join write files before kubeadm runs (upload-files: the kubeadm configuration with the
preflight ignore list, the CA material). A resume after someone changed a setting must not run
kubeadm against files written with the old one, so a kubeadm phase first compares the settings
the files were written with to its own attempt's (``ctx.settings``) and writes them again if they
differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from clusters.models import Cluster
from nodes import readiness
from nodes.models import Node
from operations.formatting import settings_changes
from operations.models import Operation, PhaseAttempt, PhaseRun
from operations.runner import PhaseContext

IGNORE = "ignore-preflight-errors"
METHOD = "certificate-method"
SKIP = "skip-phases"


def machine_settings(operation: Operation, phase: PhaseRun, kubeadm_names: Iterable[str]) -> tuple[Cluster, dict]:
    """The cluster as it is now, and what an init or join attempt on a machine runs with, read
    now: the cluster's and the machine's ignore lists merged, and the kubeadm phases skipped in its
    group. A phase on no machine (join's read-back) gets neither."""
    cluster = Cluster.objects.get(pk=operation.cluster_id)
    settings: dict = {}
    node = Node.objects.filter(pk=phase.node_id).first() if phase.node_id else None
    if node is not None:
        settings[IGNORE] = readiness.preflight_ignore_list(cluster, node)
        settings[SKIP] = skipped_kubeadm_phases(operation, phase.group, kubeadm_names)
    return cluster, settings


def files_written_with(ctx: PhaseContext, upload_phase: str) -> dict | None:
    """The settings this machine's files were last written with (None: not written yet).

    ``upload_phase`` writes them, and a later phase that found other settings wrote them again
    before it succeeded: so the latest succeeded attempt from that phase on ran with them.
    """
    upload = ctx.operation.phases.filter(group=ctx.phase.group, name=upload_phase).first()
    if upload is None:
        return None
    attempt = (
        PhaseAttempt.objects.filter(
            phase__operation=ctx.operation,
            phase__group=ctx.phase.group,
            phase__order__gte=upload.order,
            status=PhaseAttempt.Status.SUCCEEDED,
        )
        .order_by("-finished_at", "-id")
        .first()
    )
    return attempt.settings if attempt is not None else None


def refresh_files(
    ctx: PhaseContext, *, upload_phase: str, keys: Iterable[str], upload: Callable[[PhaseContext], None]
) -> bool:
    """Write the files again (``upload``) when the ``keys`` settings they were written with differ
    from this attempt's. True if it wrote them."""
    written = files_written_with(ctx, upload_phase)
    if not written:
        return False
    keys = [key for key in keys if key in ctx.settings]
    before = {key: written.get(key) for key in keys}
    now = {key: ctx.settings.get(key) for key in keys}
    if before == now:
        return False
    ctx.log(
        f"The settings changed since the files were written ({'; '.join(settings_changes(before, now))}): "
        "writing them again."
    )
    upload(ctx)
    return True


def skipped_kubeadm_phases(operation: Operation, group: str, kubeadm_names: Iterable[str]) -> list[str]:
    """The kubeadm phases of ``group`` a person chose to skip (kubeadm's names)."""
    names = set(kubeadm_names)
    skipped = operation.phases.filter(group=group, status=PhaseRun.Status.SKIPPED)
    return [name for name in skipped.values_list("name", flat=True) if name in names]

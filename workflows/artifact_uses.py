"""What still needs an artifact set Kubeboard holds: asked before one is deleted
(artifacts.services.delete_set, through ``register_use_finder`` in workflows.apps).

A set (version V, architecture A) is in use, and its deletion refused, while:

* an **upgrade** that installs from it is queued or running, or stopped (failed, interrupted,
  cancelled: resumable) as its cluster's newest upgrade, with a machine it pushes the set to
  whose phases have not all finished (the run's ``package_source.sets`` names the set per
  machine, fixed when it started: changing the source does not change it);
* a **Prepare** of a cluster at V is queued or running, or stopped as the cluster's newest
  Prepare (not a dry run), with a machine of architecture A (or not known yet) whose phases have
  not all finished, and the cluster's source is the artifact set (each phase reads the source
  when it starts, so a resume after choosing package repositories no longer uses the set), or a
  running phase started with it;
* a **cluster** at V whose source is the artifact set has a machine Prepare still has to run on
  (new, reachable, unreachable or failed, not prepared for V, or prepared as a worker and now a
  control plane: it lacks the control-plane images) of architecture A or not known yet.

An older stopped run is not counted: if it is resumed after the set is gone, its step that needs
the set fails saying the set is no longer held and to import it again. Machines that were
prepared keep their pushed copy; a note (not a refusal) names them for the confirmation page.
"""

from __future__ import annotations

from artifacts.models import ArtifactSet
from artifacts.services import SetUse
from clusters.models import Cluster
from kubeadm import prepare as knowledge
from kubeadm.versions import with_v
from nodes.models import Node
from operations.models import Operation, PhaseAttempt, PhaseRun
from workflows.models import MachinePreparation, PrepareSettings
from workflows.prepare import KIND as PREPARE_KIND
from workflows.prepare import PREPARABLE
from workflows.upgrade import KIND as UPGRADE_KIND

ARTIFACTS = PrepareSettings.Source.ARTIFACTS.value
SOURCE_PLACE = "Prepare machines → Source and containerd settings"


def _same_version(a: str, b: str) -> bool:
    return with_v(a.strip()) == with_v(b.strip())


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _source(cluster: Cluster) -> str:
    chosen = PrepareSettings.objects.filter(cluster=cluster).values_list("source", flat=True).first()
    return chosen or PrepareSettings.Source.PACKAGES.value


def _architectures(node_ids) -> dict[int, str]:
    return {
        p.node_id: (p.facts or {}).get("architecture", "")
        for p in MachinePreparation.objects.filter(node_id__in=list(node_ids))
    }


def _stopped_or_running(operation: Operation) -> str:
    return "queued" if operation.status == Operation.Status.QUEUED else operation.get_status_display().lower()


def _candidates(kind: str):
    """Queued or running runs of ``kind``, and stopped ones that are their cluster's newest."""
    found = []
    newest: dict[int, int] = {}
    for operation in Operation.objects.filter(
        kind=kind, status__in=(*Operation.ACTIVE_STATUSES, *Operation.RESUMABLE_STATUSES)
    ).select_related("cluster"):
        if operation.status in Operation.RESUMABLE_STATUSES:
            if operation.cluster_id not in newest:
                latest = (
                    Operation.objects.filter(cluster_id=operation.cluster_id, kind=kind)
                    .order_by("-created_at", "-id")
                    .values_list("pk", flat=True)
                    .first()
                )
                newest[operation.cluster_id] = latest
            if newest[operation.cluster_id] != operation.pk:
                continue
        found.append(operation)
    return sorted(found, key=lambda op: op.pk)


def _unfinished(operation: Operation) -> list[tuple[int | None, str]]:
    """(node id, group) of each machine with a phase not finished yet."""
    rows = operation.phases.exclude(status__in=PhaseRun.DONE_STATUSES).exclude(group="")
    return sorted(set(rows.values_list("node_id", "group")), key=lambda row: row[1])


def _upgrades(artifact_set: ArtifactSet) -> list[SetUse]:
    uses = []
    for operation in _candidates(UPGRADE_KIND):
        sets = ((operation.params or {}).get("package_source") or {}).get("sets") or {}
        machines = [group for _, group in _unfinished(operation) if sets.get(group) == artifact_set.name]
        if not machines:
            continue
        state = _stopped_or_running(operation)
        what = (
            f"upgrade #{operation.pk} of cluster {operation.cluster.name} to {operation.params.get('target', '?')} "
            f"is {state} and installs from this set on {_names(machines)}"
        )
        if operation.is_active:
            todo = f"let upgrade #{operation.pk} finish (a cancelled upgrade can still be resumed, so it keeps the set)"
        else:
            todo = (
                f"resume upgrade #{operation.pk} to the end; an upgrade of {operation.cluster.name} started later "
                "takes its place"
            )
        uses.append(SetUse(what, todo))
    return uses


def _running_with_artifacts(operation: Operation) -> bool:
    return PhaseAttempt.objects.filter(
        phase__operation=operation, status=PhaseAttempt.Status.RUNNING, settings__source=ARTIFACTS
    ).exists()


def _prepares(artifact_set: ArtifactSet) -> tuple[list[SetUse], set[int]]:
    uses: list[SetUse] = []
    counted: set[int] = set()
    for operation in _candidates(PREPARE_KIND):
        cluster = operation.cluster
        if not _same_version(cluster.kubernetes_version, artifact_set.kubernetes_version):
            continue
        if operation.is_resumable and (operation.params or {}).get("dry_run"):
            continue  # a stopped dry run changed nothing; a new one can be started any time
        if _source(cluster) != ARTIFACTS and not (operation.is_active and _running_with_artifacts(operation)):
            continue
        unfinished = _unfinished(operation)
        arch = _architectures(node for node, _ in unfinished)
        machines = [
            (node, group) for node, group in unfinished if arch.get(node, "") in ("", artifact_set.architecture)
        ]
        if not machines:
            continue
        counted |= {node for node, _ in machines if node is not None}
        state = _stopped_or_running(operation)
        what = (
            f"Prepare #{operation.pk} on cluster {cluster.name} is {state} and installs from this set on "
            f"{_names([group for _, group in machines])}"
        )
        if operation.is_active:
            todo = (
                f"let Prepare #{operation.pk} finish, or cancel it and choose package repositories as "
                f"{cluster.name}'s source ({SOURCE_PLACE})"
            )
        else:
            todo = (
                f"resume Prepare #{operation.pk} to the end, or choose package repositories as {cluster.name}'s "
                f"source ({SOURCE_PLACE}): a resume then installs from them"
            )
        uses.append(SetUse(what, todo))
    return uses, counted


def _clusters_on(artifact_set: ArtifactSet) -> list[Cluster]:
    """The clusters at the set's version whose source is the artifact set."""
    return [
        cluster
        for cluster in Cluster.objects.filter(prepare_settings__source=ARTIFACTS).order_by("name")
        if _same_version(cluster.kubernetes_version, artifact_set.kubernetes_version)
    ]


def _not_prepared(artifact_set: ArtifactSet, counted: set[int]) -> list[SetUse]:
    uses = []
    version = with_v(artifact_set.kubernetes_version)
    for cluster in _clusters_on(artifact_set):
        nodes = list(cluster.nodes.filter(status__in=PREPARABLE).exclude(pk__in=counted).order_by("name"))
        preparations = {p.node_id: p for p in MachinePreparation.objects.filter(node__in=nodes)}
        waiting: list[tuple[str, str]] = []  # (name, what is shown after it)
        for node in nodes:
            found = preparations.get(node.pk)
            done = found and found.prepared_at and _same_version(found.kubernetes_version or "v0", version)
            # A worker made a control plane must be prepared again: the set's control-plane
            # images were not sent to it (workflows.prepare_steps.prepared_as_worker).
            promoted = done and found.prepared_as == Node.Role.WORKER and node.role == Node.Role.CONTROL_PLANE
            if done and not promoted:
                continue
            arch = ((found.facts or {}) if found else {}).get("architecture", "")
            if arch in ("", artifact_set.architecture):
                why = " (prepared as a worker, now a control plane)" if promoted else ""
                waiting.append((node.name, why or ("" if arch else " (architecture not known yet)")))
        if waiting:
            shown = [name + why for name, why in waiting]
            names = _names([name for name, _ in waiting])
            uses.append(
                SetUse(
                    f"cluster {cluster.name} prepares its machines from artifact sets of {version}, and "
                    f"{_names(shown)} {'is' if len(waiting) == 1 else 'are'} not prepared yet",
                    f"prepare {names} first, remove {'it' if len(waiting) == 1 else 'them'} from {cluster.name}, "
                    f"or choose package repositories as {cluster.name}'s source ({SOURCE_PLACE})",
                )
            )
    return uses


def _copies(artifact_set: ArtifactSet) -> list[SetUse]:
    """Not refusals: the machines that keep a pushed copy, and clusters a machine added later
    would need the set for."""
    notes = []
    prepared = (
        MachinePreparation.objects.filter(source=ARTIFACTS, prepared_at__isnull=False)
        .select_related("node__cluster")
        .order_by("node__cluster__name", "node__name")
    )
    holders = [
        f"{p.node.name} ({p.node.cluster.name})"
        for p in prepared
        if (p.facts or {}).get("architecture") == artifact_set.architecture
        and _same_version(p.kubernetes_version or "v0", artifact_set.kubernetes_version)
    ]
    if holders:
        notes.append(
            SetUse(
                f"{_names(holders)} keep their copy in {knowledge.ARTIFACTS_DIR}/{artifact_set.name}",
                blocking=False,
            )
        )
    clusters = [cluster.name for cluster in _clusters_on(artifact_set)]
    if clusters:
        notes.append(
            SetUse(
                f"{_names(clusters)} prepare{'s' if len(clusters) == 1 else ''} machines from artifact sets of "
                f"{with_v(artifact_set.kubernetes_version)}: a machine added later needs this set imported again",
                blocking=False,
            )
        )
    return notes


def find_uses(artifact_set: ArtifactSet) -> list[SetUse]:
    """Every use of ``artifact_set`` (blocking first), then the notes."""
    prepares, counted = _prepares(artifact_set)
    return [*_upgrades(artifact_set), *prepares, *_not_prepared(artifact_set, counted), *_copies(artifact_set)]

"""Prepare machine: from a blank machine to one kubeadm can init or join (issue 19).

One group of phases per machine, several machines at once (``settings.PREPARE_MAX_PARALLEL``):

1. ``facts`` — passwordless sudo for a non-root login, the distribution, version, architecture
   and init system; anything unsupported is refused naming what is supported;
2. ``swap`` — off now and at boot (fstab entries commented out, swap units masked), unless the
   cluster's KubeletConfiguration allows swap (``failSwapOn: false``);
3. ``kernel-modules`` — overlay and br_netfilter loaded and listed in /etc/modules-load.d;
4. ``sysctl`` — ip_forward and bridge-nf-call-ip(6)tables = 1 in /etc/sysctl.d, and applied;
5. ``push`` (air-gapped source) — the cluster's artifact set copied over SFTP (files the machine
   already has with the same SHA-256 are not sent again; free space checked first) and its
   SHA-256 checked on the machine before anything of it is installed;
6. ``container-runtime`` — containerd as kubeadm expects (workflows.prepare_steps);
7. ``kubernetes`` — kubeadm, kubelet, kubectl and crictl at the cluster's exact version with the
   kubelet's unit and kubeadm's drop-in, held against unattended upgrades;
8. ``images`` (air-gapped) — the set's images imported into containerd's k8s.io namespace;
9. ``verify`` — everything read again; only then is the machine recorded as prepared.

Every step reads first and says "already done" or exactly what it changed; a dry run says what
each would change and changes nothing. A step that fails says what to do; resuming runs it again
(each is idempotent: it reads the machine again). The knowledge lives in kubeadm/prepare.py and
kubeadm/artifacts.py; the commands are in workflows/prepare_steps.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from artifacts.models import ArtifactSet
from audit.services import refusals_of
from kubeadm import prepare as knowledge
from nodes import readiness
from nodes.models import Node
from operations.models import Operation
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from workflows import prepare_steps as steps
from workflows.models import MachinePreparation, PrepareSettings

KIND = "prepare-machines"


class PrepareRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


settings_for = steps.settings_for


def _attempt_settings(operation: Operation, phase) -> dict:
    """What an attempt runs with, read when it starts: a resume after changing the source, the
    mirror or an imported set uses them as they are then (and the attempt shows the change)."""
    chosen = settings_for(operation.cluster)
    values = {
        "source": chosen.source,
        "replace-runtime": chosen.replace_runtime,
        "registry-mirrors": chosen.registry_mirrors.strip(),
        "root": settings.PREPARE_ROOT,
    }
    if chosen.source == PrepareSettings.Source.PACKAGES:
        values["repository"] = chosen.repository_url or knowledge.PKGS_K8S_IO
        values["repository-key"] = knowledge.normalize_fingerprint(chosen.repository_key_fingerprint)
    else:
        sets = ArtifactSet.objects.filter(kubernetes_version=operation.cluster.kubernetes_version)
        values["artifact-sets"] = sorted(f"{s.name} imported {s.imported_at:%Y-%m-%d %H:%M:%S}" for s in sets)
    return values


PHASES = (
    PhaseSpec(
        "facts", "Sudo, distribution, version, architecture, init system (unsupported: refused)", steps.facts, True
    ),
    PhaseSpec("swap", "Swap off now and at boot (unless the kubelet allows swap)", steps.swap, True),
    PhaseSpec(
        "kernel-modules", "overlay and br_netfilter loaded and listed in /etc/modules-load.d", steps.modules, True
    ),
    PhaseSpec(
        "sysctl", "ip_forward and bridge-nf-call-ip(6)tables = 1, in /etc/sysctl.d and applied", steps.sysctl, True
    ),
    PhaseSpec("push", "Push the artifact set over SFTP and check its SHA-256 on the machine", steps.push, True),
    PhaseSpec(
        "container-runtime", "containerd configured as kubeadm expects, started and enabled", steps.runtime, True
    ),
    PhaseSpec("kubernetes", "kubeadm, kubelet, kubectl, crictl at the cluster's version, held", steps.kubernetes, True),
    PhaseSpec("images", "Import the set's images into containerd (k8s.io namespace)", steps.images, True),
    PhaseSpec("verify", "Read everything again; record the machine as prepared", steps.verify, True),
)
AIR_GAPPED_ONLY = ("push", "images")


def _plan(operation: Operation) -> list[PlannedPhase]:
    names = [spec.name for spec in PHASES]
    if operation.params.get("source") != PrepareSettings.Source.ARTIFACTS:
        names = [name for name in names if name not in AIR_GAPPED_ONLY]
    return [
        PlannedPhase(name, group=machine["name"], node_id=machine["id"])
        for machine in operation.params["machines"]
        for name in names
    ]


def _parallel(operation: Operation) -> int:
    return max(1, int(settings.PREPARE_MAX_PARALLEL))


PREPARE = OperationKind(
    name=KIND,
    label="Prepare machines",
    phases=PHASES,
    plan=_plan,
    max_parallel_groups=_parallel,
    settings=_attempt_settings,
    skippable=frozenset({"swap", "kernel-modules", "sysctl", "container-runtime", "images"}),
)


PREPARABLE = (Node.Status.NEW, Node.Status.REACHABLE, Node.Status.UNREACHABLE, Node.Status.FAILED)


@refusals_of("operation.queued", PrepareRefused, details={"kind": KIND})
def start_prepare(cluster, machines: list[Node], *, user=None, dry_run: bool = False) -> Operation:
    """Refuse what cannot work (nothing is contacted), then queue the preparation of ``machines``."""
    from operations.services import start_operation

    if not machines:
        raise PrepareRefused("no machine chosen", hint="tick the machines to prepare")
    for node in machines:
        if node.cluster_id != cluster.pk:
            raise PrepareRefused(f"{node.name} is not a machine of cluster {cluster.name}")
        if node.status not in PREPARABLE and not dry_run:
            raise PrepareRefused(
                f"{node.name} is {node.get_status_display().lower()}: preparing it would restart its container "
                "runtime under a running kubelet",
                hint="a dry run shows what would change; to prepare it again, reset it first",
            )
        problems = [
            p
            for p in readiness.facts_refusals(node, kubernetes_version=cluster.kubernetes_version)
            if "host key" in p.message
        ]
        if problems:
            raise PrepareRefused(problems[0].message, hint=problems[0].hint)
    active = cluster.operations.filter(status__in=Operation.ACTIVE_STATUSES, mutating=True).first()
    if active is not None:
        raise PrepareRefused(f"operation #{active.pk} ({active.get_kind_display()}) is running", hint="wait for it")
    chosen = settings_for(cluster)
    if (
        chosen.source == PrepareSettings.Source.ARTIFACTS
        and not ArtifactSet.objects.filter(kubernetes_version=cluster.kubernetes_version).exists()
    ):
        raise PrepareRefused(
            f"cluster {cluster.name} prepares machines from an artifact set, and Kubeboard holds none for "
            f"Kubernetes {cluster.kubernetes_version}",
            hint="import one (Artifact sets page, or manage.py artifacts import DIR), or choose package repositories",
        )
    ordered = sorted(machines, key=lambda n: n.name)
    with transaction.atomic():
        operation = start_operation(
            cluster,
            KIND,
            user=user,
            params={
                "machines": [{"id": n.pk, "name": n.name} for n in ordered],
                "dry_run": bool(dry_run),
                "source": chosen.source,
            },
        )
        for node in ordered:
            MachinePreparation.objects.update_or_create(node=node, defaults={"operation": operation})
    return operation


def preparable(cluster):
    return cluster.nodes.filter(status__in=PREPARABLE).order_by("name")


SETTINGS_FIELDS = ("source", "repository_url", "repository_key_fingerprint", "registry_mirrors", "replace_runtime")


def save_settings(form, *, user=None) -> PrepareSettings:
    """Save the cluster's preparation settings (a validated PrepareSettingsForm), audited with
    what changed. A running Prepare's next attempt uses them (the kind's attempt settings)."""
    from audit.services import record

    instance = form.instance
    before = (
        {name: getattr(PrepareSettings.objects.get(pk=instance.pk), name) for name in SETTINGS_FIELDS}
        if instance.pk
        else {}
    )
    with transaction.atomic():
        saved = form.save()
        record(
            "prepare_settings.changed",
            actor=user,
            obj=saved.cluster,
            before=before,
            after={name: getattr(saved, name) for name in SETTINGS_FIELDS},
        )
    return saved

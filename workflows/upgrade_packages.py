"""Where an upgrade's package steps come from, and those steps (issue 19 item 2).

Per step (kubeadm before ``kubeadm upgrade``; kubelet and kubectl after it, on a drained node):

* ``typed`` — the cluster's typed package command (Day-two settings). It wins when set, as before;
* ``packages`` — the cluster's prepare source is package repositories: the repository file moves
  to the target's minor (pkgs.k8s.io is one repository per minor), the packages are unheld,
  installed at the target's exact version and held again (kubeadm/prepare.py's command lines);
* ``artifacts`` — the prepare source is an artifact set: the target's set for the machine's
  architecture is pushed and its SHA-256 checked on the machine (Prepare's own push step), its
  kubeadm installed, its images imported, later its kubelet and kubectl installed;
* ``""`` — none of these: each machine's own kubeadm is used and kubelets are left as they are.

A cluster "has a prepare source" when its preparation settings were saved or one of its machines
was prepared by Kubeboard: a cluster Kubeboard never prepared keeps the old behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from artifacts.models import ArtifactSet
from artifacts.services import find_set
from kubeadm import prepare as knowledge
from kubeadm import versions
from nodes.connect import phase_connection
from nodes.models import Node
from operations.runner import PhaseContext, PhaseError
from workflows import prepare_steps
from workflows.models import DayTwoSettings, MachinePreparation, PrepareSettings

TYPED = "typed"
PACKAGES = PrepareSettings.Source.PACKAGES.value
ARTIFACTS = PrepareSettings.Source.ARTIFACTS.value
WHICH = ("kubeadm", "kubelet")


@dataclass
class PackageSource:
    """What the plan says about the package steps and what the run records."""

    kinds: dict[str, str]  # "kubeadm"/"kubelet" -> typed, packages, artifacts or ""
    texts: dict[str, str]  # the plan page's line for each
    refusals: list[tuple[str, str]] = field(default_factory=list)  # (reason, what to do)
    repository: str = ""
    key: str = ""
    sets: dict[str, str] = field(default_factory=dict)  # node name -> artifact set name

    def installs(self, which: str) -> bool:
        return bool(self.kinds.get(which))

    @property
    def pushes(self) -> bool:
        return ARTIFACTS in self.kinds.values()

    def params(self) -> dict:
        return {"kinds": self.kinds, "repository": self.repository, "key": self.key, "sets": self.sets}


def prepare_source(cluster) -> str:
    """The cluster's prepare source, or "" when Kubeboard never prepared anything for it."""
    chosen = PrepareSettings.objects.filter(cluster=cluster).first()
    if chosen is not None:
        return chosen.source
    prepared = MachinePreparation.objects.filter(node__cluster=cluster, prepared_at__isnull=False).first()
    return prepared.source if prepared is not None and prepared.source in (PACKAGES, ARTIFACTS) else ""


def _repository_text(base: str, target: str) -> str:
    minor = f"v{versions.minor_of(target)}" if target else "the target's minor"
    if not base or base.rstrip("/") == knowledge.PKGS_K8S_IO:
        return f"from pkgs.k8s.io {minor} repository"
    return f"from the mirror {base} {minor} repository"


def source_for(cluster, tools: DayTwoSettings, target: str, nodes: list[Node]) -> PackageSource:
    """Decide each package step's source for an upgrade of ``nodes`` to ``target`` ("" when no
    target is chosen yet: the texts say what would be used, nothing is refused)."""
    typed = {"kubeadm": tools.kubeadm_package_command.strip(), "kubelet": tools.kubelet_package_command.strip()}
    source = prepare_source(cluster)
    kinds = {which: TYPED if typed[which] else source for which in WHICH}
    found = PackageSource(kinds=kinds, texts={})
    if source == PACKAGES:
        chosen = prepare_steps.settings_for(cluster)
        found.repository = chosen.repository_url or knowledge.PKGS_K8S_IO
        found.key = knowledge.normalize_fingerprint(chosen.repository_key_fingerprint)
    facts = {p.node_id: p.facts or {} for p in MachinePreparation.objects.filter(node__in=[n.pk for n in nodes])}
    architectures = sorted({facts.get(n.pk, {}).get("architecture", "") for n in nodes} - {""})
    for which in WHICH:
        kind = kinds[which]
        if kind == TYPED:
            found.texts[which] = "typed command"
        elif kind == PACKAGES:
            found.texts[which] = _repository_text(found.repository, target)
        elif kind == ARTIFACTS:
            shown = versions.with_v(target) if target else "of the target"
            found.texts[which] = "from artifact set " + (
                ", ".join(f"{shown} {arch}" for arch in architectures) or f"{shown} (architecture not known yet)"
            )
        else:
            found.texts[which] = ""
    if not target or source not in (PACKAGES, ARTIFACTS) or kinds == {"kubeadm": TYPED, "kubelet": TYPED}:
        return found
    for node in nodes:
        known = facts.get(node.pk, {})
        if not known.get("family") or not known.get("architecture"):
            found.refusals.append(
                (
                    f"{node.name}: Kubeboard does not know its distribution and architecture (it was not prepared by "
                    "Kubeboard), so the upgrade cannot install from the cluster's prepare source",
                    f"run Prepare on {node.name} as a dry run (it records what the machine is and changes nothing), "
                    "or type the cluster's package commands",
                )
            )
            continue
        if source == ARTIFACTS:
            name = knowledge.set_name(target, known["architecture"])
            held = find_set(versions.with_v(target), known["architecture"])
            if held is None:
                found.refusals.append(
                    (
                        f"cluster {cluster.name} upgrades from an artifact set, and Kubeboard holds none for "
                        f"Kubernetes {versions.with_v(target)} on {known['architecture']} ({node.name})",
                        f"import artifact set {name}: manage.py artifacts import DIR (or the Artifact sets page)",
                    )
                )
            else:
                found.sets[node.name] = held.name
    return found


# --- the steps ----------------------------------------------------------------------------------------


def _kind(ctx: PhaseContext, which: str) -> str:
    return ((ctx.params.get("package_source") or {}).get("kinds") or {}).get(which, "")


def _artifact_set(ctx: PhaseContext) -> ArtifactSet:
    name = ((ctx.params.get("package_source") or {}).get("sets") or {}).get(ctx.phase.group, "")
    version, _, arch = name.rpartition("-")
    found = find_set(version, arch)
    if found is None:
        raise PhaseError(
            f"artifact set {name or 'for ' + ctx.node.name} is no longer held by Kubeboard",
            hint="import it again (manage.py artifacts import DIR), then resume",
        )
    return found


def push(ctx: PhaseContext) -> None:
    """Prepare's push step with the target's set: sent, then its SHA-256 checked on the machine."""
    prepare_steps.push(ctx, _artifact_set(ctx))


def images(ctx: PhaseContext) -> None:
    """Prepare's images step with the target's set: kubeadm upgrade then pulls nothing."""
    prepare_steps.images(ctx, _artifact_set(ctx))


def install(ctx: PhaseContext, which: str, target: str) -> None:
    """The kubeadm or kubelet step from the recorded prepare source."""
    kubelet = which == "kubelet"
    found = prepare_steps.facts_of(ctx)
    with phase_connection(ctx) as conn:
        machine = prepare_steps.machine_for(ctx, conn)
        if _kind(ctx, which) == ARTIFACTS:
            artifact_set = _artifact_set(ctx)
            step = knowledge.StepReport(f"{which} {target} from artifact set {artifact_set.name}")
            paths = knowledge.KUBELET_FILES if kubelet else knowledge.KUBEADM_BINARIES
            prepare_steps.install_from_set(machine, artifact_set, paths, step)
            prepare_steps.report(machine, step)
            if kubelet:
                for argv in knowledge.RESTART_KUBELET:
                    machine.run(list(argv), label=" ".join(argv))
                _record_prepared_for(ctx, target)
            return
        source = ctx.params["package_source"]
        repo = knowledge.upgrade_repository(found.family, target, base=source["repository"], fingerprint=source["key"])
        step = knowledge.StepReport(f"{which} {target} repository")
        prepare_steps.ensure_repository(machine, repo, step)
        prepare_steps.report(machine, step)
        names = knowledge.KUBELET_PACKAGES if kubelet else knowledge.KUBEADM_PACKAGES
        wait = int(settings.PREPARE_LOCK_WAIT_SECONDS)
        for argv in knowledge.upgrade_package_commands(
            found.family, target, names, lock_wait=wait, restart_kubelet=kubelet
        ):
            if argv[0] in ("apt-get", "dnf") and argv[1] != "versionlock":
                prepare_steps.run_package_manager(machine, found.family, argv, label=" ".join(argv[:2]))
            else:
                machine.run(argv, label=" ".join(argv[:2]))
        ctx.log(f"{ctx.node.name}: {', '.join(names)} {target} installed {_repository_text(repo.base, target)}, held.")
        if kubelet:
            _record_prepared_for(ctx, target)


def _record_prepared_for(ctx: PhaseContext, target: str) -> None:
    """Once the last package step installed the target, the machine is prepared for it: its page
    and a later Prepare then name the version it runs, not the one Prepare first installed."""
    version = versions.with_v(target)
    if MachinePreparation.objects.filter(node=ctx.node, prepared_at__isnull=False).update(kubernetes_version=version):
        ctx.log(f"{ctx.node.name}: Kubeboard records it as prepared for Kubernetes {version}.")

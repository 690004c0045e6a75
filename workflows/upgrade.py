"""Upgrade a cluster: the plan (like ``kubeadm upgrade plan``) and the rollout.

The plan reads the versions the API server reports (its own, each kubelet's, each control-plane
static Pod's image, kube-proxy and CoreDNS) and what the last machine check found (each
machine's kubeadm), then applies the version policy of ``kubeadm.versions``: the control plane
moves one minor at a time, never down; kubelets may be at most three minors behind it; the
machines' kubeadm must be able to deploy the target (or a package command installs it).

The rollout is one operation, each node a group of phases:

* ``check`` and ``etcd-snapshot`` (cluster level): the plan again with live numbers, then a
  snapshot of etcd taken before anything changes (kept as a "pre-upgrade" snapshot);
* the first control plane: the kubeadm package step (the cluster's command, if set), a check of
  the kubeadm it installed, then ``kubeadm upgrade apply`` phase by phase;
* every other control plane, one at a time: ``kubeadm upgrade node`` phase by phase;
* ``control-plane-upgraded`` (cluster level): the API server reports the target; the cluster's
  recorded version moves to it;
* the workers, ``upgrade_batch_size`` at a time: package step, ``kubeadm upgrade node``;
* on every node: drain, the kubelet package step (the cluster's command, which installs and
  restarts the kubelet), a wait until the API server reports the new kubelet, uncordon.

A failure stops the rollout (workers not started yet wait: their phases end "cancelled" with the
reason); resuming continues from the node that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

import kube
from audit.services import refusals_of
from clusters import preconditions
from clusters.models import Cluster
from core.waiting import WaitCancelled, WaitTimedOut, wait_until
from kubeadm import versions, workflow
from kubeadm.components import ETCD, UPGRADE_PLAN_ORDER, VERSIONED_COMPONENTS
from kubeadm.errors import UnsupportedVersionError
from nodes import readiness
from nodes.connect import phase_connection, run_kubeadm
from nodes.models import Node
from operations.models import Operation, PhaseRun
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import OperationCancelled, PhaseContext, PhaseError
from remote import commands
from workflows import endpoint, upgrade_packages
from workflows.backup import settings_for, take_snapshot
from workflows.models import DayTwoSettings, EtcdSnapshot

KIND = "upgrade"
VERIFY_TIMEOUT = 300
# kubeadm's phases, in its order: upgrade apply on the first control plane, upgrade node on the others.
APPLY_PHASES = tuple(p.name for p in workflow.UPGRADE_PHASES)
NODE_PHASES = tuple(p.name for p in workflow.UPGRADE_NODE_PHASES)
WORKER_PHASES = tuple(p.name for p in workflow.UPGRADE_NODE_WORKER_PHASES)


class UpgradeRefused(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# --- the plan ---------------------------------------------------------------------------------------


@dataclass
class NodePlan:
    name: str
    role: str
    ready: bool | None
    kubelet: str
    kubelet_after: str
    kubeadm: str  # found by the last machine check ("" unknown)
    components: dict[str, str]
    steps: list[str]

    @property
    def component_tags(self) -> list[str]:
        """The control-plane images' tags in ``kubeadm upgrade plan``'s order ("" on a worker)."""
        return [self.components.get(c, "") for c in UPGRADE_PLAN_ORDER]


@dataclass
class Refusal:
    message: str
    hint: str


@dataclass
class UpgradePlan:
    cluster: Cluster
    current: str  # the API server's version ("" when unreachable)
    target: str
    policy: str
    suggestions: list[str]  # the allowed targets, newest first: what the policy text names
    components: list[dict]  # {"name", "current", "target"}
    nodes: list[NodePlan]
    order: list[list[str]]  # groups of node names, in rollout order
    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    api_error: str = ""
    # Why nothing can be planned at all (the cluster is not initialized …): the page shows only this.
    precondition: preconditions.Precondition = preconditions.MET
    # What the machines' kubeadm means for the target when no kubeadm package command is set.
    kubeadm_note: str = ""
    # Where each package step comes from ("typed command", "from pkgs.k8s.io v1.38 repository", …).
    package_source: upgrade_packages.PackageSource | None = None

    @property
    def allowed(self) -> bool:
        return bool(self.target) and not self.refusals

    @property
    def way_forward(self) -> list[str]:
        """What to do about the refusals, each hint once (three machines with the same old
        kubeadm need one instruction)."""
        return list(dict.fromkeys(r.hint for r in self.refusals if r.hint))


def _tag(image: str) -> str:
    return image.rsplit(":", 1)[-1] if ":" in image else ""


def _same(a: str, b: str) -> bool:
    return versions.with_v(a.split("+")[0]) == versions.with_v(b.split("+")[0]) if a and b else False


def allowed_targets(current: str, kubeadms: list[str] = ()) -> list[str]:
    """The versions a control plane at ``current`` may be upgraded to, newest first: the ones this
    Kubeboard deploys (the newest patch of each supported minor, and any patch of a supported minor
    a machine's kubeadm has) that the version policy (``versions.upgrade_path``) allows. The
    policy text, the page's choice and the refusal's hint all read this one list."""
    if not current:
        return []
    found = set(versions.offered_versions()) | {versions.with_v(k) for k in kubeadms if k}
    ok = []
    for version in found:
        try:
            if versions.upgrade_path(current, version) is None:
                ok.append(version)
        except UnsupportedVersionError:
            continue
    return sorted(ok, key=lambda v: versions.parse_version(v, check_supported=False), reverse=True)


def policy_text(current: str, allowed: list[str]) -> str:
    """The policy in words, for ``current`` and its ``allowed_targets``."""
    rule = "the control plane moves one minor version at a time and never down"
    if not current:
        return f"The allowed targets are known once the API server reports its version ({rule})."
    if not allowed:
        return (
            f"No version this Kubeboard deploys ({', '.join(versions.offered_versions())}) is an upgrade "
            f"from {current}: {rule}."
        )
    major, minor, _ = versions.parse_version(allowed[0], check_supported=False)
    return (
        f"From {current} the control plane may go to {', '.join(allowed)} ({rule}); "
        f"kubelets may then be as old as v{major}.{minor - versions.KUBELET_SKEW}."
    )


def _way_forward(current: str, allowed: list[str]) -> str:
    if allowed:
        return "choose one of the allowed targets: " + ", ".join(allowed)
    return f"nothing to upgrade to: {current} is as new as this Kubeboard deploys"


def resolve_target(text: str) -> tuple[str, str]:
    """(the target as a version, why it is not one or ""). "1.37" means the newest patch of
    1.37, as in every form; an unsupported minor stays as typed, for the policy to refuse."""
    text = text.strip()
    if not text:
        return "", ""
    try:
        return versions.resolve_version(text, field="target version"), ""
    except UnsupportedVersionError:
        pass
    try:
        versions.parse_version(text, field="target version", check_supported=False)
    except UnsupportedVersionError as exc:
        return text, str(exc)
    return versions.with_v(text), ""


def ordered_nodes(cluster) -> tuple[list[Node], list[Node]]:
    """(control planes, workers) Kubeboard knows as joined; the first control plane first."""
    joined = cluster.nodes.filter(status=Node.Status.JOINED).order_by("created_at", "pk")
    planes = [n for n in joined if n.role == Node.Role.CONTROL_PLANE]
    workers = sorted((n for n in joined if n.role == Node.Role.WORKER), key=lambda n: n.name)
    return planes, workers


def _kubeadm_of(node: Node) -> str:
    return ((node.facts or {}).get("binaries") or {}).get("kubeadm", {}).get("version") or ""


def _kubeadm_note(machines: list[tuple[str, str]], target: str) -> str:
    """What "no kubeadm package command" means here, in agreement with each machine's kubeadm."""
    if not machines:
        return "none: there is no joined machine yet"
    if not target:
        found = ", ".join(f"{name} {version or 'unknown (run Check machine)'}" for name, version in machines)
        return f"none: each machine's own kubeadm is used ({found})"
    lacking = [(name, version) for name, version in machines if not version or kubeadm_problem(version, target)]
    if not lacking:
        return f"none: every machine's kubeadm can upgrade to {target}"
    found = ", ".join(f"{name} has {version or 'no known kubeadm'}" for name, version in lacking)
    return f"none, and not every machine can upgrade to {target} with its own kubeadm: {found}"


def build_plan(cluster, target: str = "", *, state: kube.ClusterState | None = None) -> UpgradePlan:
    """What an upgrade to ``target`` would do, and why it would be refused (``refusals``).

    A cluster that cannot have an upgrade (not initialized …) is not asked anything: the plan is
    ``precondition`` unmet with that reason, and no connection is made."""
    tools = settings_for(cluster)
    planes, workers = ordered_nodes(cluster)
    target, target_problem = resolve_target(target)
    if state is None:
        precondition = preconditions.check(cluster, "upgrade_plan")
        if not precondition:
            return UpgradePlan(
                cluster=cluster,
                current="",
                target=target,
                policy="",
                suggestions=[],
                components=[],
                nodes=[],
                order=[],
                refusals=[Refusal(precondition.reason, precondition.hint)],
                precondition=precondition,
            )
    api_error, api_refusal = "", None
    if state is None:
        try:
            state = kube.cluster_state(cluster)
        except kube.KubeAPIError as exc:
            api_error = str(exc)
            # The error names the endpoint and says what to do: said once, not wrapped again.
            reason = api_error.removesuffix(f" — {exc.hint}") if exc.hint else api_error
            api_refusal = Refusal(reason, exc.hint or "bring the control plane back first")
    current = state.server_version.split("+")[0] if state else ""
    kubeadms = [(n.name, _kubeadm_of(n)) for n in planes + workers]
    allowed = allowed_targets(current, [version for _, version in kubeadms])
    plan = UpgradePlan(
        cluster=cluster,
        current=current,
        target=target,
        policy=policy_text(current, allowed),
        suggestions=allowed,
        components=[],
        nodes=[],
        order=[],
        api_error=api_error,
    )
    if api_refusal is not None:
        plan.refusals.append(api_refusal)
    if not planes:
        plan.refusals.append(Refusal(f"cluster {cluster.name} has no joined control plane", "initialize it first"))
    busy = cluster.operations.filter(status__in=Operation.ACTIVE_STATUSES, mutating=True).first()
    if busy is not None:
        plan.refusals.append(Refusal(f"operation #{busy.pk} ({busy.get_kind_display()}) is running", "wait for it"))
    # The machines are checked against the target only once the policy allows it: a target no
    # one may choose needs one reason, not one more per machine.
    target_allowed = False
    if target and current:
        if not target_problem:
            try:
                target_problem = versions.upgrade_path(current, target) or ""
            except UnsupportedVersionError as exc:
                target_problem = str(exc)
        if target_problem:
            plan.refusals.append(Refusal(target_problem, _way_forward(current, allowed)))
        else:
            target_allowed = True
    nodes_seen = state.nodes if state else {}
    # Components as kubeadm upgrade plan lists them.
    for component in UPGRADE_PLAN_ORDER:
        now = sorted(
            {_tag(n.components.get(component, "")) for n in nodes_seen.values() if n.components.get(component)}
        )
        after = target if component != ETCD else f"the etcd kubeadm {target or 'of the target'} ships"
        plan.components.append({"name": component, "current": ", ".join(now) or "?", "target": after or "—"})
    if state is not None:
        plan.components.append(
            {"name": "kube-proxy", "current": _tag(state.kube_proxy_image) or "—", "target": target or "—"}
        )
        plan.components.append(
            {
                "name": "CoreDNS",
                "current": _tag(state.coredns_image) or "—",
                "target": "kubeadm's CoreDNS for the target",
            }
        )
    source = upgrade_packages.source_for(cluster, tools, target if target_allowed else "", planes + workers)
    plan.package_source = source
    for reason, hint in source.refusals:
        plan.refusals.append(Refusal(reason, hint))
    kubelet_package = source.installs("kubelet")
    kubeadm_package = source.installs("kubeadm")
    if not kubeadm_package:
        plan.kubeadm_note = _kubeadm_note(kubeadms, target if target_allowed else "")
    first = planes[0].name if planes else ""
    for node in planes + workers:
        seen = nodes_seen.get(node.name)
        kubelet = seen.kubelet_version if seen else ""
        steps: list[str] = []
        if source.pushes:
            steps.append(f"push the artifact set and check it ({source.sets.get(node.name) or 'the target'})")
        if kubeadm_package:
            steps.append(_step_text("kubeadm", source))
        if source.pushes:
            steps.append("import the set's images")
        if node.role == Node.Role.CONTROL_PLANE:
            steps.append("kubeadm upgrade apply" if node.name == first else "kubeadm upgrade node (control plane)")
        else:
            steps.append("drain")
            steps.append("kubeadm upgrade node")
        if node.role == Node.Role.CONTROL_PLANE:
            steps.append("drain")
        if kubelet_package:
            steps.append(_step_text("kubelet", source) + " (installs and restarts the kubelet)")
        steps.append("uncordon")
        plan.nodes.append(
            NodePlan(
                name=node.name,
                role=node.get_role_display(),
                ready=seen.ready if seen else None,
                kubelet=kubelet,
                kubelet_after=(target if kubelet_package and target_allowed else kubelet),
                kubeadm=_kubeadm_of(node),
                components={k: _tag(v) for k, v in (seen.components if seen else {}).items()},
                steps=steps,
            )
        )
        if seen is None and state is not None:
            plan.refusals.append(
                Refusal(f"{node.name} is not a Node in the API server", "check the node, or reset it before upgrading")
            )
        elif seen is not None and not seen.ready:
            plan.warnings.append(f"{node.name} is not Ready")
        if target_allowed and kubelet and not kubelet_package:
            try:
                skew = versions.kubelet_skew(kubelet, target)
            except UnsupportedVersionError:
                skew = None
            if skew:
                plan.refusals.append(
                    Refusal(
                        f"{node.name}: {skew}",
                        "upgrade that kubelet first (set a kubelet package command, or a prepare source)",
                    )
                )
        if target_allowed and not kubeadm_package:
            found = _kubeadm_of(node)
            problem = kubeadm_problem(found, target) if found else "no kubeadm version known (run Check machine)"
            if problem:
                plan.refusals.append(
                    Refusal(
                        f"{node.name}: {problem}",
                        f"install kubeadm {target} on the machines, choose the cluster's prepare source (package "
                        "repositories or an artifact set, under Prepare machines), or set its kubeadm package command",
                    )
                )
    if planes:
        plan.order.append([planes[0].name])
        plan.order += [[n.name] for n in planes[1:]]
        size = max(1, tools.upgrade_batch_size)
        names = [n.name for n in workers]
        plan.order += [names[i : i + size] for i in range(0, len(names), size)]
    unknown = sorted(set(nodes_seen) - {n.name for n in planes + workers})
    if unknown:
        plan.warnings.append(
            "the API server lists node(s) Kubeboard does not manage, which this upgrade leaves alone: "
            + ", ".join(unknown)
        )
    return plan


def _step_text(which: str, source: upgrade_packages.PackageSource) -> str:
    kind = source.kinds[which]
    if kind == upgrade_packages.TYPED:
        return f"{which} package command"
    names = "kubeadm" if which == "kubeadm" else "kubelet and kubectl"
    return f"{names} {source.texts[which]}"


def kubeadm_problem(kubeadm_version: str, target: str) -> str | None:
    """Why ``kubeadm_version`` cannot upgrade a control plane to ``target`` (None when it can)."""
    try:
        reason = versions.deployable(kubeadm_version, target)
        if reason:
            return reason
        if versions.parse_version(kubeadm_version, check_supported=False) < versions.parse_version(
            target, check_supported=False
        ):
            return f"kubeadm {kubeadm_version} is older than the target {target}: it cannot upgrade to it"
    except UnsupportedVersionError as exc:
        return str(exc)
    return None


# --- starting it ------------------------------------------------------------------------------------


@refusals_of("operation.queued", UpgradeRefused, details={"kind": KIND})
def start_upgrade(cluster, target: str, *, user=None, batch_size: int | None = None) -> Operation:
    """Refuse a plan with any refusal (nothing runs), else queue the rollout."""
    from operations.services import start_operation

    tools = settings_for(cluster)
    if batch_size is not None and not 1 <= batch_size <= 50:
        raise UpgradeRefused("workers upgraded at once must be between 1 and 50")
    plan = build_plan(cluster, target)
    if not plan.precondition:
        raise UpgradeRefused(plan.precondition.reason, hint=plan.precondition.hint)
    if plan.refusals:
        raise UpgradeRefused("; ".join(r.message for r in plan.refusals), hint="; ".join(plan.way_forward))
    if not plan.target:
        raise UpgradeRefused("choose a target version", hint=_way_forward(plan.current, plan.suggestions))
    planes, workers = ordered_nodes(cluster)
    everyone = planes + workers
    params = {
        "from": plan.current,
        "target": plan.target,
        "first": planes[0].name,
        "control_planes": [n.name for n in planes],
        "workers": [n.name for n in workers],
        "node_ids": {n.name: n.pk for n in everyone},
        "batch_size": batch_size or tools.upgrade_batch_size,
        # Recorded with the run, as they were when it started.
        "kubeadm_package_command": tools.kubeadm_package_command,
        "kubelet_package_command": tools.kubelet_package_command,
        "package_source": plan.package_source.params() if plan.package_source else {},
        "ignore_preflight_errors": {n.name: upgrade_ignore_list(cluster, n, tools) for n in everyone},
    }
    with transaction.atomic():
        return start_operation(cluster, KIND, user=user, params=params)


def upgrade_ignore_list(cluster, node: Node, tools: DayTwoSettings) -> list[str]:
    return readiness.preflight_ignore_list(cluster, node, tools.upgrade_ignore_preflight_errors)


# --- the phases -------------------------------------------------------------------------------------


def _target(ctx: PhaseContext) -> str:
    return ctx.params["target"]


def _is_first(ctx: PhaseContext) -> bool:
    return ctx.phase.group == ctx.params["first"]


def _is_control_plane(ctx: PhaseContext) -> bool:
    return ctx.phase.group in ctx.params["control_planes"]


def _stop_if_rollout_failed(ctx: PhaseContext) -> None:
    """Workers upgrade several at a time; once one failed, the ones not started yet wait."""
    failed = ctx.operation.phases.filter(status=PhaseRun.Status.FAILED).exclude(group=ctx.phase.group).first()
    if failed is not None:
        raise OperationCancelled(
            f"not started: the rollout stopped because phase {failed.label} failed; resume once it is fixed"
        )


def _check(ctx: PhaseContext) -> None:
    plan = build_plan(ctx.cluster, _target(ctx))
    # The operation itself is the running mutating operation: not a refusal here.
    refusals = [r for r in plan.refusals if f"operation #{ctx.operation.pk} " not in r.message]
    if plan.current and not _same(plan.current, ctx.params["from"]) and not _same(plan.current, _target(ctx)):
        refusals.append(
            Refusal(f"the API server now runs {plan.current}, the plan started at {ctx.params['from']}", "")
        )
    if refusals:
        raise PhaseError("; ".join(r.message for r in refusals), hint=refusals[0].hint or "fix it, then resume")
    ctx.log(f"Upgrading {ctx.cluster.name} from {plan.current} to {plan.target}. {plan.policy}")
    for warning in plan.warnings:
        ctx.log(warning, level="warning")
    ctx.log("Order: " + " → ".join("+".join(group) for group in plan.order))


def _etcd_snapshot(ctx: PhaseContext) -> None:
    snapshot = take_snapshot(ctx, reason=EtcdSnapshot.Reason.PRE_UPGRADE)
    ctx.log(
        f"If the upgrade goes wrong, etcd snapshot #{snapshot.pk} restores the cluster as it was ({ctx.params['from']})."
    )


def _package_values(target: str) -> dict[str, str]:
    major, minor, patch = versions.parse_version(target, check_supported=False)
    return {
        "version": versions.with_v(target),
        "version_number": f"{major}.{minor}.{patch}",
        "minor": f"{major}.{minor}",
    }


def _source_kind(params: dict, which: str) -> str:
    """typed, packages, artifacts or "" (a run started before sources existed: typed or nothing)."""
    kinds = (params.get("package_source") or {}).get("kinds")
    if kinds is not None:
        return kinds.get(which, "")
    return upgrade_packages.TYPED if params.get(f"{which}_package_command") else ""


def _pushes(params: dict) -> bool:
    return upgrade_packages.ARTIFACTS in {_source_kind(params, w) for w in upgrade_packages.WHICH}


def _push(ctx: PhaseContext) -> None:
    if not _is_control_plane(ctx):
        _stop_if_rollout_failed(ctx)
    upgrade_packages.push(ctx)


def _package(which: str):
    def run(ctx: PhaseContext) -> None:
        if not _is_control_plane(ctx) and which == "kubeadm":
            _stop_if_rollout_failed(ctx)
        if _source_kind(ctx.params, which) in (upgrade_packages.PACKAGES, upgrade_packages.ARTIFACTS):
            upgrade_packages.install(ctx, which, _target(ctx))
            return
        template = ctx.params.get(f"{which}_package_command") or ""
        command = template.format(**_package_values(_target(ctx)))
        with phase_connection(ctx) as conn:
            commands.run(ctx, conn, command, label=f"the {which} package command", timeout=commands.COMMAND_TIMEOUT)
        ctx.log(f"The {which} package command succeeded on {ctx.node.name}.")

    run.__name__ = f"{which}_package"
    return run


def _kubeadm_version(ctx: PhaseContext) -> None:
    if not _is_control_plane(ctx) and not _source_kind(ctx.params, "kubeadm") and not _pushes(ctx.params):
        _stop_if_rollout_failed(ctx)
    with phase_connection(ctx) as conn:
        _, lines = commands.run(ctx, conn, [commands.KUBEADM, "version", "-o", "short"], label="kubeadm version")
    found = next((line.strip() for line in reversed(lines) if line.strip()), "")
    problem = kubeadm_problem(found, _target(ctx)) if found else "kubeadm printed no version"
    if problem:
        raise PhaseError(
            f"{ctx.node.name}: {problem}; nothing was upgraded on this machine",
            hint=f"install kubeadm {_target(ctx)} there (check the cluster's kubeadm package command or prepare "
            "source), then resume",
        )
    ctx.log(f"{ctx.node.name} has kubeadm {found}: it can upgrade to {_target(ctx)}.")


def _kubeadm_phase(name: str):
    def run(ctx: PhaseContext) -> None:
        ignored = tuple((ctx.params.get("ignore_preflight_errors") or {}).get(ctx.phase.group) or ())
        if _is_first(ctx):
            argv = workflow.upgrade_apply_phase_command(name, _target(ctx), ignore_preflight_errors=ignored)
            label = f"kubeadm upgrade apply phase {name}"
        else:
            argv = workflow.upgrade_node_phase_command(name, ignore_preflight_errors=ignored)
            label = f"kubeadm upgrade node phase {name}"
        run_kubeadm(ctx, argv, label=label)

    run.__name__ = f"kubeadm_upgrade_{name.replace('-', '_')}"
    return run


def _verify_node(ctx: PhaseContext) -> None:
    """The API server reports the node Ready, its kubelet at the target (when the package step ran),
    and, on a control plane, every static Pod at the target."""
    target = _target(ctx)
    name = ctx.node.name
    want_kubelet = bool(_source_kind(ctx.params, "kubelet"))
    last = ""

    def upgraded() -> kube.NodeState | None:
        nonlocal last
        try:
            state = kube.cluster_state(ctx.cluster)
        except kube.KubeAPIError as exc:
            last = str(exc)
            return None
        problems = []
        node = state.nodes.get(name)
        if node is None:
            problems.append("not registered")
        else:
            if not node.ready:
                problems.append("not Ready")
            if want_kubelet and not _same(node.kubelet_version, target):
                problems.append(f"kubelet {node.kubelet_version}")
            if _is_control_plane(ctx):
                for component in VERSIONED_COMPONENTS:
                    tag = _tag(node.components.get(component, ""))
                    if not _same(tag, target):
                        problems.append(f"{component} {tag or 'not seen'}")
        last = ", ".join(problems)
        return None if problems else node

    try:
        node = wait_until(
            upgraded,
            timeout=VERIFY_TIMEOUT,
            cancel=ctx.cancel_event,
            waiting=lambda: ctx.log(f"Waiting for the API server to report {name} upgraded ({last})…"),
        )
    except WaitTimedOut:
        raise PhaseError(
            f"{name} not upgraded after {VERIFY_TIMEOUT} s: {last}",
            hint="check the kubelet on the machine (did the package command restart it?), then resume",
        ) from None
    except WaitCancelled:
        raise OperationCancelled("cancelled while waiting for the node") from None
    parts = [f"kubelet {node.kubelet_version}"]
    if _is_control_plane(ctx):
        parts += [f"{c} {_tag(node.components.get(c, ''))}" for c in UPGRADE_PLAN_ORDER]
    ctx.log(f"{name} is Ready: " + ", ".join(parts) + ".")


def _uncordon(ctx: PhaseContext) -> None:
    with kube.phase_errors():
        kube.set_unschedulable(ctx.cluster, ctx.node.name, False)
    ctx.log(f"Uncordoned {ctx.node.name}: Pods may be scheduled there again.")


def _control_plane_upgraded(ctx: PhaseContext) -> None:
    from clusters import kubeadm_config

    target = _target(ctx)
    with kube.phase_errors():
        version = kube.server_version(ctx.cluster)
    if not _same(version, target):
        raise PhaseError(f"the API server reports {version}, expected {target}", hint="check the control planes")
    with transaction.atomic():
        Cluster.objects.filter(pk=ctx.cluster.pk).update(kubernetes_version=versions.with_v(target))
        cluster = Cluster.objects.get(pk=ctx.cluster.pk)
        Cluster.objects.filter(pk=cluster.pk).update(kubeadm_config=kubeadm_config.render(cluster))
    ctx.log(f"The API server reports {version}; the cluster's Kubernetes version is now {target}.")


def _done(ctx: PhaseContext) -> None:
    from audit.services import record

    with kube.phase_errors("resume once the API server answers"):
        state = kube.cluster_state(ctx.cluster)
    summary = ", ".join(f"{n.name} kubelet {n.kubelet_version}" for n in state.nodes.values())
    record(
        "cluster.upgraded",
        actor=ctx.operation.requested_by,
        obj=ctx.cluster,
        cluster=ctx.cluster,
        details={"from": ctx.params["from"], "to": ctx.params["target"], "operation": ctx.operation.pk},
    )
    ctx.log(f"Upgrade to {ctx.params['target']} done: API server {state.server_version}; {summary}.")


def _spec(name: str, description: str, run, idempotent: bool = True) -> PhaseSpec:
    return PhaseSpec(name, description, run, idempotent=idempotent)


PHASES = (
    _spec("check", "Check the plan again with live versions (policy, kubeadm, kubelets)", _check),
    _spec("etcd-snapshot", "Snapshot etcd before anything changes", _etcd_snapshot),
    _spec(
        "push",
        "Push the target's artifact set over SFTP and check its SHA-256 on the machine (Prepare's push step)",
        _push,
    ),
    _spec(
        "kubeadm-package",
        "Install kubeadm at the target: the typed command, or from the cluster's prepare source",
        _package("kubeadm"),
        False,
    ),
    _spec("images", "Import the target set's images into containerd (k8s.io namespace)", upgrade_packages.images),
    _spec("kubeadm-version", "Check that the machine's kubeadm can upgrade to the target", _kubeadm_version),
    _spec("preflight", "kubeadm upgrade … phase preflight", _kubeadm_phase("preflight")),
    _spec(
        "control-plane",
        "kubeadm upgrade … phase control-plane: etcd and the static Pods, one by one",
        _kubeadm_phase("control-plane"),
    ),
    _spec(
        "upload-config",
        "kubeadm upgrade apply phase upload-config (kubeadm-config, kubelet-config)",
        _kubeadm_phase("upload-config"),
    ),
    _spec("kubelet-config", "kubeadm upgrade … phase kubelet-config", _kubeadm_phase("kubelet-config")),
    _spec(
        "bootstrap-token",
        "kubeadm upgrade apply phase bootstrap-token (RBAC for joining nodes)",
        _kubeadm_phase("bootstrap-token"),
    ),
    _spec("addon", "kubeadm upgrade … phase addon (CoreDNS, kube-proxy)", _kubeadm_phase("addon")),
    _spec("post-upgrade", "kubeadm upgrade … phase post-upgrade", _kubeadm_phase("post-upgrade")),
    _spec(
        endpoint.INIT_KUBE_PROXY_PHASE,
        "Point kube-proxy's kubeconfig at the local proxy again: kubeadm's addon phase wrote controlPlaneEndpoint "
        "(local-proxy clusters)",
        endpoint.init_kube_proxy,
    ),
    _spec("drain", "Cordon the node and evict its Pods", kube.phase_drain),
    _spec(
        "kubelet-package",
        "Install kubelet and kubectl at the target and restart the kubelet (typed command, or the prepare source)",
        _package("kubelet"),
        False,
    ),
    _spec("verify-node", "Wait until the API server reports the node upgraded and Ready", _verify_node),
    _spec("uncordon", "Let Pods be scheduled on the node again", _uncordon),
    _spec(
        "control-plane-upgraded",
        "The API server reports the target; record the cluster's new version",
        _control_plane_upgraded,
    ),
    _spec("done", "Read the versions back and record the upgrade", _done),
)


def _node_phases(operation: Operation, name: str) -> list[str]:
    params = operation.params
    first = name == params["first"]
    plane = name in params["control_planes"]
    names: list[str] = []
    if _pushes(params):
        names.append("push")
    if _source_kind(params, "kubeadm"):
        names.append("kubeadm-package")
    if _pushes(params):
        names.append("images")
    names.append("kubeadm-version")
    if not plane:
        names.append("drain")
    names += list(APPLY_PHASES if first else NODE_PHASES if plane else WORKER_PHASES)
    if first and endpoint.INIT_KUBE_PROXY_PHASE not in endpoint.init_phases_unplanned(operation.cluster):
        names.append(endpoint.INIT_KUBE_PROXY_PHASE)
    if plane:
        names.append("drain")
    if _source_kind(params, "kubelet"):
        names.append("kubelet-package")
    names += ["verify-node", "uncordon"]
    return names


def plan(operation: Operation) -> list[PlannedPhase]:
    params = operation.params
    first_id = params["node_ids"][params["first"]]
    planned = [PlannedPhase("check", node_id=first_id), PlannedPhase("etcd-snapshot", node_id=first_id)]
    for name in params["control_planes"]:
        planned += [
            PlannedPhase(p, group=name, node_id=params["node_ids"][name]) for p in _node_phases(operation, name)
        ]
    planned.append(PlannedPhase("control-plane-upgraded"))
    for name in params["workers"]:
        planned += [
            PlannedPhase(p, group=name, node_id=params["node_ids"][name]) for p in _node_phases(operation, name)
        ]
    planned.append(PlannedPhase("done"))
    return planned


def parallel_groups(operation: Operation) -> int:
    """Control planes one at a time (etcd members must not change together); once they are all
    upgraded, workers ``batch_size`` at a time. The runner asks at the start of each block."""
    planes = operation.params["control_planes"]
    pending = operation.phases.filter(group__in=planes).exclude(status__in=PhaseRun.DONE_STATUSES).exists()
    return 1 if pending else int(operation.params.get("batch_size") or 1)


UPGRADE = OperationKind(
    name=KIND, label="Upgrade cluster", phases=PHASES, plan=plan, max_parallel_groups=parallel_groups
)

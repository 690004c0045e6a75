"""Day two from a shell: ``manage.py cluster upgrade-plan|upgrade|certs|renew-certs|backup|backups|
restore|config-export|config-import …`` and ``manage.py node reset|prepare …``.

They go through the same services as the pages (refusals, audit records), print what the pages
show, and follow operations live like ``manage.py cluster init``: exit 0 when it succeeded, 1
when it failed (resume it with ``manage.py operation resume ID --follow``), 2 when it was refused
before anything ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import CommandError

from clusters.commandline import REFUSED, Subcommands, acting_user, follow_to_exit
from clusters.models import Cluster
from core.feedback import refusal_text
from kubeadm.errors import KubeadmError
from workflows import backup, certificates, config_io, init_command, join_command, prepare, reset, upgrade
from workflows.models import CertificateReport, EtcdSnapshot

CLUSTER_ACTIONS = (
    "upgrade-plan",
    "upgrade",
    "certs",
    "renew-certs",
    "backup",
    "backups",
    "restore",
    "config-export",
    "config-import",
)


def add_cluster_parsers(actions) -> None:
    def cluster_parser(name: str, help: str, *, user: bool = True, follow: bool = True):
        parser = actions.add_parser(name, help=help)
        parser.add_argument("name", help="cluster name")
        if user:
            parser.add_argument("--user", help="act as this user (their role must allow it)")
        if follow:
            parser.add_argument("--no-wait", action="store_true", help="queue it and print its id, do not follow")
        return parser

    plan = cluster_parser(
        "upgrade-plan", "what an upgrade would do, like kubeadm upgrade plan", user=False, follow=False
    )
    plan.add_argument("target", nargs="?", default="", help="the version to plan for (e.g. v1.37.2)")
    up = cluster_parser("upgrade", "upgrade the cluster node by node (etcd snapshot first)")
    up.add_argument("target", help="the version to upgrade to (e.g. v1.37.2)")
    up.add_argument("--batch-size", type=int, help="workers upgraded at once (default: the cluster's setting)")
    certs = cluster_parser("certs", "the certificates of every control plane (and their warnings)", follow=False)
    certs.add_argument("--read", action="store_true", help="read them from the machines first")
    renew = cluster_parser("renew-certs", "kubeadm certs renew on every control plane, then restart the static Pods")
    renew.add_argument("certificates", nargs="*", help="names as kubeadm certs renew takes them, or all")
    renew.add_argument("--add-san", action="append", default=[], help="add a SAN to the API server certificate")
    cluster_parser("backup", "take an etcd snapshot now")
    cluster_parser("backups", "list the etcd snapshots", user=False, follow=False)
    restore = cluster_parser("restore", "restore an etcd snapshot (single control plane)")
    restore.add_argument("--snapshot", type=int, required=True, help="the snapshot's number (see backups)")
    restore.add_argument("--confirm", default="", help="the cluster's name, to confirm")
    export = cluster_parser("config-export", "print the kubeadm configuration (kubeadm config print form)", user=False,
                            follow=False)  # fmt: skip
    export.add_argument("--kubelet", action="store_true", help="append the live KubeletConfiguration")
    imported = actions.add_parser("config-import", help="create a cluster from a kubeadm file (v1beta3 or v1beta4)")
    imported.add_argument("name", help="the new cluster's name")
    imported.add_argument("file", type=Path, help="the kubeadm configuration file")
    imported.add_argument("--team", required=True, help="the team that owns it")
    imported.add_argument("--user", help="act as this user (an operator of the team)")
    imported.add_argument("--no-wait", action="store_true", help="queue it and print its id, do not follow")


def _cluster(name: str) -> Cluster:
    cluster = Cluster.objects.filter(name=name).first()
    if cluster is None:
        known = ", ".join(Cluster.objects.values_list("name", flat=True)[:20]) or "none yet"
        raise CommandError(f"no cluster named {name!r} (clusters: {known})", returncode=REFUSED)
    return cluster


def _refused(exc: Exception) -> CommandError:
    return CommandError(refusal_text(exc), returncode=REFUSED)


def run_cluster(command, action: str, **options) -> None:
    out = command.stdout
    if action == "config-import":
        return _config_import(command, **options)
    cluster = _cluster(options["name"])
    user = acting_user(options.get("user"), cluster) if options.get("user") else None
    wait = not options.get("no_wait")
    try:
        if action == "upgrade-plan":
            return _print_plan(out, upgrade.build_plan(cluster, options.get("target") or ""))
        if action == "upgrade":
            operation = upgrade.start_upgrade(
                cluster, options["target"], user=user, batch_size=options.get("batch_size")
            )
        elif action == "certs":
            if options.get("read"):
                operation = certificates.start_inventory(cluster, user=user)
                from operations.follow import follow

                follow(operation, lambda line: None)
            return _print_certificates(out, cluster)
        elif action == "renew-certs":
            operation = certificates.start_renewal(
                cluster, names=options.get("certificates") or [], add_sans=options.get("add_san") or [], user=user
            )
        elif action == "backup":
            operation = backup.start_snapshot(cluster, user=user)
        elif action == "backups":
            return _print_backups(out, cluster)
        elif action == "restore":
            snapshot = EtcdSnapshot.objects.filter(cluster=cluster, pk=options["snapshot"]).first()
            if snapshot is None:
                raise CommandError(f"cluster {cluster.name} has no snapshot #{options['snapshot']}", returncode=REFUSED)
            operation = backup.start_restore(cluster, snapshot, user=user, confirm=options.get("confirm") or "")
        elif action == "config-export":
            out.write(config_io.export_text(cluster, kubelet=options.get("kubelet", False)), ending="")
            return None
        else:  # pragma: no cover - argparse allows only the actions above
            raise CommandError(f"unknown action {action}")
    except (upgrade.UpgradeRefused, backup.BackupRefused, certificates.CertificatesRefused) as exc:
        raise _refused(exc) from None
    follow_to_exit(command, operation, wait=wait)


def _print_plan(out, plan: upgrade.UpgradePlan) -> None:
    """Like the page: the versions, then either the refusal (its reasons and what to do, exit 2)
    or what will change and in which order."""
    if not plan.precondition:
        out.write(f"refused: {plan.precondition}")
        sys.exit(REFUSED)
    out.write(f"[upgrade/versions] Cluster version: {plan.current or 'unknown'}")
    out.write(f"[upgrade/versions] {plan.policy}")
    out.write("[upgrade/versions] Allowed targets: " + (", ".join(plan.suggestions) or "none"))
    out.write("")
    width = max([len(n.name) for n in plan.nodes] + [4])
    out.write(f"{'NODE':<{width}}   ROLE            KUBELET      KUBEADM      CONTROL PLANE")
    for node in plan.nodes:
        tags = ", ".join(t for t in node.component_tags if t) or "-"
        out.write(f"{node.name:<{width}}   {node.role:<15} {node.kubelet or '?':<12} {node.kubeadm or '?':<12} {tags}")
    for warning in plan.warnings:
        out.write(f"warning: {warning}")
    if plan.refusals:
        out.write("")
        for refusal in plan.refusals:
            out.write(f"refused: {refusal.message}")
        out.write("what to do: " + "; ".join(plan.way_forward))
        if plan.target:
            sys.exit(REFUSED)
    if not plan.target or plan.refusals:
        return
    out.write("")
    out.write(f"{'COMPONENT':<24} {'CURRENT':<20} TARGET")
    for row in plan.components:
        out.write(f"{row['name']:<24} {row['current']:<20} {row['target']}")
    out.write("")
    out.write("Order: etcd snapshot, then " + " → ".join("+".join(group) for group in plan.order))
    out.write(f"You can now apply the upgrade by running: manage.py cluster upgrade {plan.cluster.name} {plan.target}")


def _print_certificates(out, cluster: Cluster) -> None:
    reports = list(
        CertificateReport.objects.filter(node__cluster=cluster).select_related("node").order_by("node__name")
    )
    if not reports:
        out.write(f"no certificates read yet: manage.py cluster certs {cluster.name} --read")
        return
    for report in reports:
        out.write(f"# {report.node.name} (read {report.collected_at:%Y-%m-%d %H:%M} UTC)")
        out.write(f"{'CERTIFICATE':<26} {'EXPIRES':<17} {'DAYS LEFT':>9}  WARNING  CUSTODY / DRIFT")
        for row in report.rows:
            if "not_after" not in row:
                continue
            note = "; ".join(row.get("drift") or []) or row.get("custody", "")
            out.write(
                f"{row['name']:<26} {row['not_after'][:16].replace('T', ' '):<17} {row['days_left']:>9.1f}  "
                f"{row.get('warning') or '-':<7}  {note}"
            )
        if report.error:
            out.write(f"note: {report.error}")


def _print_backups(out, cluster: Cluster) -> None:
    out.write(f"{'#':>4}  {'TAKEN (UTC)':<16}  {'WHY':<11}  {'SIZE':>10}  {'REVISION':>9}  {'STATUS':<9}  SHA-256")
    for s in EtcdSnapshot.objects.filter(cluster=cluster):
        out.write(
            f"{s.pk:>4}  {s.created_at:%Y-%m-%d %H:%M}  {s.reason:<11}  {s.size_bytes:>10}  "
            f"{s.revision if s.revision is not None else '-':>9}  {s.status:<9}  {s.sha256}"
        )


def _config_import(command, *, name: str, file: Path, team: str, **options) -> None:
    from django.contrib.auth.models import Group

    group = Group.objects.filter(name=team).first()
    if group is None:
        raise CommandError(f"there is no team {team!r}", returncode=REFUSED)
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {file}: {exc}", returncode=REFUSED) from None
    try:
        result = config_io.parse_import(text)
    except KubeadmError as exc:
        raise CommandError(f"{file}: {exc}", returncode=REFUSED) from None
    problems = [str(error) for error in result.errors]
    cluster, refused = config_io.imported_cluster(result, name=name, team=group)
    problems += [f"{f}: {m}" for f, ms in refused.items() for m in ms]
    for note in result.notes:
        command.stdout.write(f"note: {note}")
    if problems:
        raise CommandError(f"{file} cannot become a cluster:\n  " + "\n  ".join(problems), returncode=REFUSED)
    user = acting_user(options.get("user"), cluster) if options.get("user") else None
    operation = config_io.import_cluster(cluster, result, text, user=user)
    follow_to_exit(command, operation, wait=not options.get("no_wait"))


def add_node_parser(actions) -> None:
    parser = actions.add_parser("reset", help="reset a machine: drain, kubeadm reset phase by phase, blank again")
    parser.add_argument("cluster")
    parser.add_argument("node", help="the machine to reset")
    parser.add_argument("--confirm", default="", help="the machine's name again, to confirm")
    parser.add_argument("--user", help="act as this user (their role must allow operating the cluster)")
    parser.add_argument("--no-wait", action="store_true", help="queue it and print its id, do not follow")


def run_node_reset(command, *, cluster: str, node: str, **options) -> None:
    cluster_obj = _cluster(cluster)
    machine = cluster_obj.nodes.filter(name=node).first()
    if machine is None:
        known = ", ".join(cluster_obj.nodes.values_list("name", flat=True)) or "none yet"
        raise CommandError(f"cluster {cluster} has no machine named {node!r} (machines: {known})", returncode=REFUSED)
    user = acting_user(options.get("user"), cluster_obj) if options.get("user") else None
    try:
        operation = reset.start_reset(machine, user=user, confirm=options.get("confirm") or "")
    except reset.ResetRefused as exc:
        raise _refused(exc) from None
    follow_to_exit(command, operation, wait=not options.get("no_wait"))


def add_prepare_parser(actions) -> None:
    parser = actions.add_parser(
        "prepare", help="prepare blank machines for kubeadm: swap, modules, sysctls, containerd, kubeadm/kubelet"
    )
    parser.add_argument("cluster", help="cluster name")
    parser.add_argument("node", nargs="+", help="the machines to prepare (in parallel)")
    parser.add_argument("--dry-run", action="store_true", help="list what would change; change nothing")
    parser.add_argument("--user", help="act as this user (their role must allow it)")
    parser.add_argument("--no-wait", action="store_true", help="queue it and print its id, do not follow")


def run_node_prepare(command, *, cluster: str, node: list[str], **options) -> None:
    cluster_obj = _cluster(cluster)
    machines = list(cluster_obj.nodes.filter(name__in=node))
    missing = sorted(set(node) - {m.name for m in machines})
    if missing:
        known = ", ".join(cluster_obj.nodes.values_list("name", flat=True)) or "none yet"
        raise CommandError(
            f"cluster {cluster} has no machine named {', '.join(missing)} (machines: {known})", returncode=REFUSED
        )
    user = acting_user(options.get("user"), cluster_obj) if options.get("user") else None
    try:
        operation = prepare.start_prepare(cluster_obj, machines, user=user, dry_run=options.get("dry_run", False))
    except prepare.PrepareRefused as exc:
        raise _refused(exc) from None
    follow_to_exit(command, operation, wait=not options.get("no_wait"))


# --- what workflows' AppConfig registers with clusters.commandline -------------------------


def _run_init(command, action: str, **options) -> None:
    init_command.run(command, **options)


def _add_node_parsers(actions) -> None:
    join_command.add_parser(actions)
    add_node_parser(actions)
    add_prepare_parser(actions)


def _run_node(command, action: str, **options) -> None:
    if action == "join":
        join_command.run(command, **options)
    elif action == "prepare":
        run_node_prepare(command, **options)
    else:
        run_node_reset(command, **options)


# Command name -> its workflow subcommands, in the order ``--help`` lists them (init first, as
# before; join and reset after the node command's own actions).
SUBCOMMANDS: dict[str, tuple[Subcommands, ...]] = {
    "cluster": (
        Subcommands(("init",), init_command.add_parser, _run_init),
        Subcommands(CLUSTER_ACTIONS, add_cluster_parsers, run_cluster),
    ),
    "node": (Subcommands(("join", "reset", "prepare"), _add_node_parsers, _run_node),),
}

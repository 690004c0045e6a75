"""``manage.py node join CLUSTER NAME… [--control-plane]``: the nodes panel's join, for scripts.

Kept beside the join workflow; ``nodes/management/commands/node.py`` only adds the subcommand
(workflows/commands.py's SUBCOMMANDS, registered with clusters.commandline).
"""

from __future__ import annotations

from django.core.management.base import CommandError

from clusters.commandline import REFUSED, acting_user, follow_to_exit, split_names
from clusters.models import Cluster
from core.feedback import refusal_text
from operations.services import OperationStateError
from workflows.join import JoinRefused, start_join


def add_parser(actions) -> None:
    join = actions.add_parser("join", help="join machines to a running cluster (workers in parallel)")
    join.add_argument("cluster")
    join.add_argument("names", nargs="+", metavar="NAME", help="machines to join")
    join.add_argument("--control-plane", action="store_true", help="join them as control planes, one at a time")
    join.add_argument(
        "--certificate-method",
        choices=[choice.value for choice in Cluster.ControlPlaneJoinMethod],
        help="how a control plane gets the shared certificates (default: the cluster's setting)",
    )
    join.add_argument("--parallel", type=int, help="workers joining at once (default: the cluster's setting)")
    join.add_argument(
        "--skip-phases", action="append", default=[], metavar="PHASES", help="phases to skip (NAME or NODE:NAME)"
    )
    join.add_argument("--user", help="act as this user (their role must allow operating the cluster)")
    join.add_argument("--no-wait", action="store_true", help="queue it and print its id, do not follow")


def run(command, *, cluster: str, names: list[str], **options) -> None:
    cluster_obj = Cluster.objects.filter(name=cluster).first()
    if cluster_obj is None:
        raise CommandError(f"no cluster named {cluster!r}", returncode=REFUSED)
    user = acting_user(options.get("user"), cluster_obj)
    nodes = []
    for name in names:
        node = cluster_obj.nodes.filter(name=name).first()
        if node is None:
            known = ", ".join(cluster_obj.nodes.values_list("name", flat=True)) or "none yet"
            raise CommandError(
                f"cluster {cluster} has no machine named {name!r} (machines: {known})", returncode=REFUSED
            )
        nodes.append(node)
    if options.get("certificate_method") and not options.get("control_plane"):
        raise CommandError("--certificate-method only applies with --control-plane", returncode=REFUSED)
    try:
        operation = start_join(
            cluster_obj,
            nodes,
            control_plane=options.get("control_plane", False),
            method=options.get("certificate_method") or "",
            parallelism=options.get("parallel"),
            user=user,
            skip=split_names(options.get("skip_phases") or []),
        )
    except (JoinRefused, OperationStateError) as exc:
        raise CommandError(refusal_text(exc), returncode=REFUSED) from None
    follow_to_exit(command, operation, wait=not options.get("no_wait"))

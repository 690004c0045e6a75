"""``manage.py cluster init NAME``: the cluster page's Initialize, for scripts.

Kept beside the init workflow; ``clusters/management/commands/cluster.py`` only adds the
subcommand (workflows/commands.py's SUBCOMMANDS, registered with clusters.commandline). Prints the same live progress as the operation page
and exits 0 on success, 1 when the operation failed, was cancelled or interrupted, 2 when it was
refused before anything ran.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from clusters.commandline import REFUSED, acting_user, follow_to_exit, split_names
from clusters.models import Cluster
from core.feedback import refusal_text
from operations.services import OperationStateError
from workflows.cluster_forms import candidate_machines
from workflows.init import InitRefused, start_init


def add_parser(actions) -> None:
    init = actions.add_parser("init", help="run kubeadm init on the first control-plane machine")
    init.add_argument("name", help="cluster name")
    init.add_argument("--node", help="the machine to initialize (default: the only machine not joined yet)")
    init.add_argument(
        "--skip-phases",
        action="append",
        default=[],
        metavar="PHASES",
        help="phases to skip, comma separated (kubeadm's --skip-phases names), e.g. addon",
    )
    init.add_argument("--user", help="act as this user (their role must allow operating the cluster)")
    init.add_argument("--no-wait", action="store_true", help="queue it and print its id, do not follow")


def run(command: BaseCommand, **options) -> None:
    cluster = Cluster.objects.filter(name=options["name"]).first()
    if cluster is None:
        known = ", ".join(Cluster.objects.values_list("name", flat=True)[:20]) or "none yet"
        raise CommandError(f"no cluster named {options['name']!r} (clusters: {known})", returncode=REFUSED)
    user = acting_user(options.get("user"), cluster)
    machines = list(candidate_machines(cluster))
    if options.get("node"):
        node = cluster.nodes.filter(name=options["node"]).first()
        if node is None:
            known = ", ".join(cluster.nodes.values_list("name", flat=True)) or "none yet"
            raise CommandError(
                f"cluster {cluster.name} has no machine named {options['node']!r} (machines: {known})",
                returncode=REFUSED,
            )
    elif len(machines) == 1:
        node = machines[0]
    else:
        names = ", ".join(machine.name for machine in machines) or "none — add one with `manage.py node add`"
        raise CommandError(f"choose the machine with --node (candidates: {names})", returncode=REFUSED)
    try:
        operation = start_init(cluster, node, user=user, skip=split_names(options["skip_phases"]))
    except (InitRefused, OperationStateError) as exc:
        raise CommandError(refusal_text(exc), returncode=REFUSED) from None
    follow_to_exit(command, operation, wait=not options["no_wait"])

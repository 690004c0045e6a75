"""``manage.py cluster ACTION …``: the cluster page's workflows, for scripts. Every action is a
workflow (``init``: workflows/init_command.py; the day-two actions: workflows/commands.py); this
command only gathers them under the name ``cluster``.

Prints the same live progress as the operation page and exits 0 on success, 1 when the
operation failed, was cancelled or interrupted, 2 when it was refused before anything ran.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from workflows import commands as day2_commands


class Command(BaseCommand):
    help = "Initialize a cluster's control plane on one of its machines (kubeadm init, phase by phase)."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        day2_commands.add_init_parser(actions)
        day2_commands.add_cluster_parsers(actions)

    def handle(self, *args, action: str, **options) -> None:
        if action in day2_commands.CLUSTER_ACTIONS:
            return day2_commands.run_cluster(self, action, **options)
        day2_commands.run_init(self, **options)

"""``manage.py cluster ACTION …``: the cluster page's workflows, for scripts. Every action is a
workflow (``init``: workflows/init_command.py; the day-two actions: workflows/commands.py), which
the workflows app registers with clusters.commandline; this command only gathers them under the
name ``cluster``.

Prints the same live progress as the operation page and exits 0 on success, 1 when the
operation failed, was cancelled or interrupted, 2 when it was refused before anything ran.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from clusters.commandline import add_registered_parsers, registered_runner


class Command(BaseCommand):
    help = "Initialize a cluster's control plane on one of its machines (kubeadm init, phase by phase)."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add_registered_parsers("cluster", actions)

    def handle(self, *args, action: str, **options) -> None:
        registered_runner("cluster", action)(self, action, **options)

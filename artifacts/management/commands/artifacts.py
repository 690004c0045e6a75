"""``manage.py artifacts import DIR | list``: air-gapped artifact sets from a shell.

An import reads the set in DIR (layout in kubeadm/artifacts.py), checks every file against its
SHA256SUMS and keeps a copy; exit 2 with the file named when the set is refused.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from artifacts.models import ArtifactSet
from artifacts.services import ImportRefused, import_directory
from audit.context import audit_context
from core.feedback import refusal_text


def _size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


class Command(BaseCommand):
    help = "Air-gapped artifact sets: import DIR (checked against its SHA256SUMS), list."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        imported = actions.add_parser("import", help="import the set in DIR (kubernetes-version, SHA256SUMS, bin/…)")
        imported.add_argument("directory")
        actions.add_parser("list", help="the sets Kubeboard holds")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            for artifact_set in ArtifactSet.objects.all():
                self.stdout.write(
                    f"{artifact_set.name}\t{artifact_set.files.count()} files\t{_size(artifact_set.total_bytes)}\t"
                    f"{artifact_set.imported_at:%Y-%m-%d %H:%M %Z}\t{artifact_set.source}"
                )
            return
        with audit_context(source="command:artifacts"):
            try:
                artifact_set = import_directory(options["directory"])
            except ImportRefused as exc:
                raise CommandError(refusal_text(exc), returncode=2) from None
        self.stdout.write(
            f"Imported {artifact_set.name}: {artifact_set.files.count()} files, {_size(artifact_set.total_bytes)}, "
            "each checked against SHA256SUMS."
        )

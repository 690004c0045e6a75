"""``manage.py artifacts import DIR | list | delete SET``: air-gapped artifact sets from a shell.

An import reads the set in DIR (layout in kubeadm/artifacts.py), checks every file against its
SHA256SUMS and keeps a copy; exit 2 with the file named when the set is refused. A delete removes
a set (by name, v1.37.2-amd64, or id) and its files; exit 2 naming what still uses it, and what
to do, when it is refused; exit 1 when there is no such set.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from artifacts.models import ArtifactSet
from artifacts.services import (
    DeleteRefused,
    ImportRefused,
    delete_set,
    get_set,
    import_directory,
    leftover_directories,
)
from audit.context import audit_context
from core.feedback import refusal_text
from kubeadm.prepare import ARTIFACTS_DIR as MACHINE_ARTIFACTS_DIR


def _size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


class Command(BaseCommand):
    help = "Air-gapped artifact sets: import DIR (checked against its SHA256SUMS), list, delete SET."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        imported = actions.add_parser("import", help="import the set in DIR (kubernetes-version, SHA256SUMS, bin/…)")
        imported.add_argument("directory")
        actions.add_parser("list", help="the sets Kubeboard holds")
        deleted = actions.add_parser(
            "delete", help="delete a set and its files (refused while a cluster or an operation needs it)"
        )
        deleted.add_argument("set", help="the set's name (v1.37.2-amd64) or id")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            for artifact_set in ArtifactSet.objects.all():
                self.stdout.write(
                    f"{artifact_set.name}\t{artifact_set.files.count()} files\t{_size(artifact_set.total_bytes)}\t"
                    f"{artifact_set.imported_at:%Y-%m-%d %H:%M %Z}\t{artifact_set.source}"
                )
            for entry in leftover_directories():
                self.stderr.write(f"leftover (no set, Kubeboard does not use it): {entry}")
            return
        if action == "delete":
            self._delete(options["set"])
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

    def _delete(self, key: str) -> None:
        artifact_set = get_set(key)
        if artifact_set is None:
            held = ", ".join(s.name for s in ArtifactSet.objects.all()) or "none"
            raise CommandError(f"Kubeboard holds no artifact set {key} (held: {held})")
        with audit_context(source="command:artifacts"):
            try:
                deleted = delete_set(artifact_set)
            except DeleteRefused as exc:
                raise CommandError(refusal_text(exc), returncode=2) from None
        self.stdout.write(
            f"Deleted {deleted.name}: {deleted.files} files, {_size(deleted.bytes)} freed. Machines keep the copies "
            f"Prepare pushed to {MACHINE_ARTIFACTS_DIR}/{deleted.name}."
        )
        if deleted.left:
            self.stderr.write(f"The set's records are deleted, but {deleted.left}.")

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.checkpoints import create_checkpoint, record_details
from audit.checkpoints import export as _write
from audit.context import audit_context
from audit.keys import checkpoint_key, fingerprint, public_key_text
from audit.models import AuditCheckpoint
from audit.services import record


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of the audit chain's head (Ed25519) now; --export FILE writes it (or, with --latest, "
        "the newest existing one) to FILE, to be kept outside this server."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--export", metavar="FILE", type=Path, help="write the checkpoint to FILE (JSON)")
        parser.add_argument("--latest", action="store_true", help="export the newest checkpoint instead of making one")
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="print this installation's checkpoint public key (base64) for an auditor, and nothing else",
        )

    def handle(self, *args, export=None, latest=False, public_key=False, **options) -> None:
        if public_key:
            self.stdout.write(public_key_text(checkpoint_key().public_key()))
            return
        if latest:
            checkpoint = AuditCheckpoint.objects.order_by("-seq", "-id").first()
            if checkpoint is None:
                raise CommandError("there is no checkpoint yet; run manage.py audit_checkpoint first")
        else:
            with audit_context(source="command:audit_checkpoint"), transaction.atomic():
                checkpoint = create_checkpoint(reason="on demand")
                record("audit.checkpoint_created", details=record_details(checkpoint, "on demand"))
        if export is not None:
            target = export
            try:
                _write(checkpoint, target)
            except OSError as exc:
                raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc
        self.stdout.write(
            f"checkpoint at record {checkpoint.seq} ({checkpoint.created.isoformat()}), head {checkpoint.head[:16]}…, "
            f"key {fingerprint(checkpoint.public_key)}" + (f"; exported to {export}" if export else "")
        )

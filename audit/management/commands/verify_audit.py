from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.chain import verify
from audit.checkpoints import CheckpointFileError, load
from audit.context import audit_context
from audit.verification import describe, store


class Command(BaseCommand):
    help = (
        "Verify the audit trail: every record's keyed hash and link, the chain head, the stored checkpoints and "
        "the newest checkpoint in the checkpoint directory outside the database (KUBEBOARD_AUDIT_CHECKPOINT_DIR); "
        "with --checkpoint, also an exported checkpoint kept elsewhere. Exits non-zero and names the first broken "
        "record if anything was changed, inserted or removed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            type=Path,
            help="an exported checkpoint (manage.py audit_checkpoint --export FILE) to prove the records up to it",
        )

    def handle(self, *args, checkpoint=None, **options) -> None:
        try:
            exported = load(checkpoint) if checkpoint else None
        except CheckpointFileError as exc:
            raise CommandError(str(exc)) from exc
        with audit_context(source="command:verify_audit"):
            report = verify(exported)
            store(report, source="command:verify_audit")
        for note in report.notes:
            self.stdout.write(f"note: {note}")
        if not report.intact:
            first = report.first_break
            where = f"record #{first.seq} (id {first.event_id})" if first.seq is not None else "the chain"
            self.stderr.write(f"first broken: {describe(first)}")
            for item in report.breaks:
                if item is not first:
                    self.stderr.write(f"also: {describe(item)}")
            raise CommandError(f"audit trail NOT intact: {len(report.breaks)} problem(s); first: {where}")
        summary = f"audit trail intact: {report.count} record(s) ({report.keyed} keyed"
        if report.legacy:
            summary += f", {report.legacy} from before keys, sealed by the upgrade"
        summary += ")"
        if report.external:
            summary += f"; checked against the {report.external}"
        else:
            summary += "; no external checkpoint yet (KUBEBOARD_AUDIT_CHECKPOINT_DIR)"
        if exported is not None:
            summary += (
                f"; the {exported['seq']} record(s) covered by the checkpoint of {exported['created']} are unchanged"
            )
        self.stdout.write(summary)

from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEvent
from audit.services import verify_chain


class Command(BaseCommand):
    help = "Check the audit trail's hash chain; exits non-zero if any record was changed or removed."

    def handle(self, *args, **options) -> None:
        breaks = verify_chain()
        if breaks:
            for item in breaks:
                self.stderr.write(f"record {item.event_id}: {item.reason}")
            raise CommandError(f"audit chain broken in {len(breaks)} place(s)")
        self.stdout.write(f"audit chain intact: {AuditEvent.objects.count()} record(s)")

import threading

from django.core.management.base import BaseCommand, CommandError

from audit.siem import Shipper, SinkConfigError, configured_sink, stream_status


class Command(BaseCommand):
    help = (
        "Send the audit records the SIEM (KUBEBOARD_AUDIT_SINK) has not accepted yet, in seq order; "
        "keeps running and sends new ones as they come, unless --once. The worker does the same on its own."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="send what is waiting, then exit (1 if it failed)")

    def handle(self, *args, once: bool = False, **options) -> None:
        try:
            sink = configured_sink()
        except SinkConfigError as exc:
            raise CommandError(str(exc)) from exc
        if sink is None:
            raise CommandError("no SIEM sink is configured: set KUBEBOARD_AUDIT_SINK (see README, Streaming to a SIEM)")
        shipper = Shipper(sink)
        if not once:
            self.stdout.write(f"streaming audit records to {sink.name} (Ctrl-C stops)")
            try:
                shipper.run(threading.Event())
            except KeyboardInterrupt:
                pass
            return
        sent = shipper.ship_once()
        status = stream_status()
        if status.failing_since is not None:
            raise CommandError(
                f"sent {sent} record(s) to {sink.name}, then it failed: {status.last_error}. "
                f"{status.waiting} record(s) wait; they go in order once it is back"
            )
        self.stdout.write(
            f"sent {sent} record(s) to {sink.name}; delivered up to record {status.delivered_up_to}, "
            f"{status.waiting} waiting"
        )

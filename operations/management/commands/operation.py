"""``manage.py operation follow|resume|cancel|list``: the operation page's controls for scripts.

Exit status: ``follow`` (and ``resume --follow``) exit 0 when the operation succeeded and 1 when
it failed, was cancelled or interrupted; bad input exits 2 with a message saying what was wrong.
"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.permissions import OPERATE, can
from operations.follow import follow
from operations.formatting import seconds_text
from operations.models import Operation
from operations.services import OperationStateError, cancel_operation, resume_operation


class Command(BaseCommand):
    help = "Follow, resume, cancel or list operations."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{follow,resume,cancel,list}")
        follow_parser = sub.add_parser("follow", help="print an operation's events live until it ends")
        follow_parser.add_argument("id", type=int)
        follow_parser.add_argument("--after", type=int, default=0, help="only events after this sequence number")

        resume = sub.add_parser("resume", help="resume a failed, cancelled or interrupted operation")
        resume.add_argument("id", type=int)
        resume.add_argument(
            "--skip", nargs="+", default=[], metavar="PHASE", help="phases to skip: NAME (every group) or GROUP:NAME"
        )
        resume.add_argument("--reason", default="", help="why phases are skipped (kept in the audit trail)")
        resume.add_argument("--follow", action="store_true", help="then follow it until it ends")

        cancel = sub.add_parser("cancel", help="cancel a queued or running operation")
        cancel.add_argument("id", type=int)

        listing = sub.add_parser("list", help="list a cluster's operations, newest first")
        listing.add_argument("cluster", help="cluster name")
        listing.add_argument("--limit", type=int, default=20)

        for each in (resume, cancel):
            each.add_argument("--user", help="act as this user (their role must allow operating the cluster)")

    def handle(self, *args, **options) -> None:
        action = options["action"]
        if action == "list":
            return self.list_operations(options["cluster"], options["limit"])
        operation = Operation.objects.select_related("cluster").filter(pk=options["id"]).first()
        if operation is None:
            raise CommandError(f"there is no operation {options['id']}", returncode=2)
        if action == "follow":
            self.follow(operation, options["after"])
        elif action == "resume":
            user = self.acting_user(options.get("user"), operation)
            try:
                resume_operation(operation, user=user, skip=options["skip"], skip_reason=options["reason"])
            except OperationStateError as exc:
                raise CommandError(str(exc), returncode=2) from None
            self.stdout.write(f"operation {operation.pk} queued again")
            if options["follow"]:
                self.follow(operation, 0)
        elif action == "cancel":
            user = self.acting_user(options.get("user"), operation)
            try:
                operation = cancel_operation(operation, user=user)
            except OperationStateError as exc:
                raise CommandError(str(exc), returncode=2) from None
            if operation.status == Operation.Status.CANCELLED:
                self.stdout.write(f"operation {operation.pk} cancelled")
            else:
                self.stdout.write(f"operation {operation.pk}: cancel requested; the running phase stops shortly")

    def follow(self, operation: Operation, after: int) -> None:
        def write(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        self.stdout.write(f"following {operation} (Ctrl-C stops following, not the operation)")
        status = follow(operation, write, after=after)
        sys.exit(0 if status == Operation.Status.SUCCEEDED else 1)

    def acting_user(self, username: str | None, operation: Operation):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"there is no user {username!r}", returncode=2)
        if not can(user, OPERATE, operation):
            raise CommandError(f"{username} may not operate cluster {operation.cluster.name}", returncode=2)
        return user

    def list_operations(self, cluster_name: str, limit: int) -> None:
        # Through the operation's own reference: operations sits below the clusters app.
        clusters = Operation._meta.get_field("cluster").related_model
        cluster = clusters.objects.filter(name=cluster_name).first()
        if cluster is None:
            raise CommandError(f"there is no cluster {cluster_name!r}", returncode=2)
        rows = cluster.operations.select_related("requested_by")[:limit]
        for op in rows:
            done = op.phases.filter(status__in=("succeeded", "skipped")).count()
            total = op.phases.count()
            self.stdout.write(
                f"{op.pk:>6}  {op.kind:<24} {op.status:<12} {done}/{total} phases  "
                f"{op.created_at:%Y-%m-%d %H:%M:%S}  {seconds_text(op.duration) or '-':>12}  "
                f"{op.requested_by.username if op.requested_by else 'system'}"
            )
        if not rows:
            self.stdout.write(f"cluster {cluster_name} has no operations")

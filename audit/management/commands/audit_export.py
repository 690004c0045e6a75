import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict

from audit.export import FORMATS, lines
from audit.forms import HistoryFilterForm
from audit.models import AuditEvent
from audit.queries import visible_records

FILTERS = ("cluster", "actor", "action", "object", "node", "since", "until", "outcome", "q", "correlation")


class Command(BaseCommand):
    help = (
        "Write the audit history as CSV or JSON Lines (newest first), with the history page's filters. "
        "--as USER exports only what that user may read now (a user removed from a team gets nothing of it)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--format", choices=sorted(FORMATS), default="jsonl")
        parser.add_argument("--as", dest="as_user", metavar="USER", help="export only what USER may read")
        parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
        for name in FILTERS:
            parser.add_argument(f"--{name}", help=HistoryFilterForm.base_fields[name].help_text or None)

    def handle(self, *args, format: str, as_user=None, output=None, **options) -> None:
        query = QueryDict(mutable=True)
        for name in FILTERS:
            if options.get(name) not in (None, ""):
                query[name] = options[name]
        form = HistoryFilterForm(query)
        if not form.is_valid():
            problems = "; ".join(f"--{field}: {' '.join(errors)}" for field, errors in form.errors.items())
            raise CommandError(problems)
        if as_user:
            user = get_user_model().objects.filter(username=as_user).first()
            if user is None:
                raise CommandError(f"there is no user {as_user!r}")
            records = visible_records(user)
        else:
            records = AuditEvent.objects.all()
        records = form.apply(records)
        target = open(output, "w", newline="") if output else sys.stdout
        try:
            for line in lines(records, format):
                target.write(line)
        finally:
            if output:
                target.close()

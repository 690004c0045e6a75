"""Give a user a new random password and print it once: the way back in when it is lost."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.context import audit_context
from audit.services import record
from teams.accounts import require_password_change


class Command(BaseCommand):
    help = (
        "Set a new random password for USERNAME (default: the first superuser) and print it once. "
        "Audited (never the password); also lifts a login lockout for that user. "
        "The new password must be changed at its first login."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", nargs="?", help="whose password (default: the first superuser)")

    def handle(self, *args, username: str | None = None, **options) -> None:
        users = get_user_model()
        if username:
            user = users.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"there is no user {username!r}; `manage.py ensure_admin` creates the first one")
        else:
            user = users.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
            if user is None:
                raise CommandError("there is no active superuser; `manage.py ensure_admin` creates one")
        password = secrets.token_urlsafe(12)
        with audit_context(source="command:reset_password"), transaction.atomic():
            user.set_password(password)
            user.save(update_fields=["password"])
            # Printed on a terminal, so someone else may have seen it: its owner replaces it first.
            require_password_change(user)
            record("user.password_reset", obj=user, details={"username": user.username, "via": "command"})
        self._lift_lockout(user.username)
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"  New password for {user.username} (shown only this once; changed at the first login):",
                    f"    username: {user.username}",
                    f"    password: {password}",
                    "",
                ]
            )
        )

    def _lift_lockout(self, username: str) -> None:
        # A forgotten password often comes with a lockout from the wrong ones typed before.
        from axes.utils import reset

        reset(username=username)

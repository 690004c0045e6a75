"""Create the first administrator if there is none, printing its generated password once."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from audit.context import audit_context
from audit.services import record
from core.encryption import keyring


class Command(BaseCommand):
    help = "Create an 'admin' superuser with a random password unless a superuser exists."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options) -> None:
        # Make (and announce) the embedded encryption key now, not inside the first operation.
        keyring()
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "An administrator already exists, so no password is printed. Lost it? "
                "`.venv/bin/python manage.py reset_password` prints a new one "
                "(or `manage.py changepassword USERNAME` to type your own)."
            )
            return
        password = secrets.token_urlsafe(12)
        with audit_context(source="command:ensure_admin"), transaction.atomic():
            user = users.objects.create_superuser(username=username, email="", password=password)
            record("user.created", obj=user, details={"username": username, "superuser": True})
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "  First administrator created. This password is shown only once:",
                    f"    username: {username}",
                    f"    password: {password}",
                    "",
                ]
            )
        )

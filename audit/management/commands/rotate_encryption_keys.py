"""Re-encrypt every stored secret under the first configured key."""

from django.core.management.base import BaseCommand
from django.db import transaction

from audit.context import audit_context
from audit.services import record
from core.encryption import SecretValue, encrypted_fields, rotate


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the first key of KUBEBOARD_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        total = 0
        with audit_context(source="command:rotate_encryption_keys"), transaction.atomic():
            for model, name in encrypted_fields():
                for pk, value in model.objects.values_list("pk", name):
                    if not value:
                        continue
                    model.objects.filter(pk=pk).update(**{name: SecretValue(ciphertext=rotate(value.ciphertext))})
                    total += 1
            record("encryption.keys_rotated", details={"secrets": total})
        self.stdout.write(f"re-encrypted {total} secret(s)")

"""Re-encrypt every stored secret under the first configured key."""

from django.core.management.base import BaseCommand
from django.db import transaction

from core.encryption import SecretValue, encrypted_fields, rotate


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the first key of KUBEBOARD_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        total = 0
        with transaction.atomic():
            for model, name in encrypted_fields():
                for pk, value in model.objects.values_list("pk", name):
                    if not value:
                        continue
                    model.objects.filter(pk=pk).update(**{name: SecretValue(ciphertext=rotate(value.ciphertext))})
                    total += 1
        self.stdout.write(f"re-encrypted {total} secret(s)")

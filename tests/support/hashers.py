"""The password hasher of the test process: Django's own PBKDF2-SHA256 at a cost tests can pay."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2-SHA256 (``pbkdf2_sha256$…``, what production stores) with 1,000 iterations instead
    of Django's 1,000,000: each user a test makes costs 0.33 CPU-s at full strength, and the
    suite makes hundreds. Kubeboard's own processes started by tests (daphne, workers) keep the
    full count, and raise a test user's hash to it on its first login there."""

    iterations = 1000

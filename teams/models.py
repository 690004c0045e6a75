"""What Kubeboard keeps about a user account beyond Django's ``User``."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AccountProfile(models.Model):
    """One per account that needs it (made on first need, see ``teams.accounts``).

    ``must_change_password``: the account's password is a one-time password someone else made
    and saw (a superuser on the Teams page), so its owner replaces it before anything else; set
    when the account is created there, cleared by its owner's change."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_profile")
    must_change_password = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"account profile of {self.user}"

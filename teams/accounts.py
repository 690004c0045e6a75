"""A user's own password: the change, and the change required after a one-time password.

An account a superuser creates on the Teams page starts with a one-time password that the
superuser saw (``teams.services.create_user``), so its owner must choose their own before doing
anything else. The flag lives in the database (``AccountProfile``); at login it is copied into
the session, and ``teams.middleware`` reads only the session, so a page costs no extra query.
"""

from __future__ import annotations

from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver

from audit.services import record
from teams.models import AccountProfile

# The session key that says "this session's user must change their password first".
MUST_CHANGE = "teams.must_change_password"


def require_password_change(account) -> None:
    """``account``'s password is a one-time password: its owner changes it at first login."""
    AccountProfile.objects.update_or_create(user=account, defaults={"must_change_password": True})


def must_change_password(account) -> bool:
    return AccountProfile.objects.filter(user=account, must_change_password=True).exists()


@receiver(user_logged_in, dispatch_uid="teams_password_change_required")
def _remember_at_login(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session") and must_change_password(user):
        request.session[MUST_CHANGE] = True


def change_own_password(form: PasswordChangeForm) -> None:
    """Save a valid change of the user's own password (old one checked by the form), lift the
    required change and write one ``user.password_changed`` record (never a password). Saving
    the new password ends the user's other sessions (core.sessions); the caller keeps its own."""
    user = form.user
    with transaction.atomic():
        required = AccountProfile.objects.filter(user=user, must_change_password=True).update(
            must_change_password=False
        )
        form.save()
        record(
            "user.password_changed",
            actor=user,
            obj=user,
            details={"username": user.get_username(), "required": bool(required), "via": "password page"},
        )

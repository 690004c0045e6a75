"""Logins, logouts and failed logins are audited (outside any cluster: superusers see them,
and each user their own). The password never reaches a record."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.services import record


@receiver(user_logged_in, dispatch_uid="audit_login")
def logged_in(sender, request, user, **kwargs) -> None:
    record("auth.login", actor=user, details={"username": user.get_username()})


@receiver(user_logged_out, dispatch_uid="audit_logout")
def logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        record("auth.logout", actor=user, details={"username": user.get_username()})


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def login_failed(sender, credentials, request=None, **kwargs) -> None:
    # django-axes' receiver runs first (its app is listed earlier) and marks a locked-out request.
    locked = bool(getattr(request, "axes_locked_out", False))
    record(
        "auth.login_failed",
        outcome="denied" if locked else "failure",
        details={"username": str(credentials.get("username", ""))[:150], "locked_out": locked},
    )

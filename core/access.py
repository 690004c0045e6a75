"""Telling open streams that a user's access may have shrunk, so they are re-checked at once.

A user removed from a team (their ``TeamMembership`` deleted), given another role, deactivated
or logged out must not keep receiving a live operation stream. Each such change announces the
user here after it commits: to every web process through the channel layer group
``access_group(user_id)`` when there is a layer (Redis), and to the listeners of this process
(the embedded mode, where the web process itself made the change). Streams re-check the user
with ``core.permissions`` and close the ones no longer allowed; a change that bypasses these
signals (a raw SQL update, another process in the embedded mode) is caught by the streams'
periodic re-check instead.

A new password, a deactivation, a lost staff or superuser flag and a changed role also end the
user's other sessions (``core.sessions``): the signals below notice the change, whichever
process saves it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from core.broadcast import group_send
from core.models import TeamMembership

log = logging.getLogger(__name__)

MESSAGE_TYPE = "access.changed"

# Callables taking the message dict; web processes register theirs (operations.fanout).
_listeners: list[Callable[[dict], None]] = []


def access_group(user_id: int) -> str:
    return f"user-access-{user_id}"


def session_fingerprint(session_key: str | None) -> str:
    """What travels instead of a session key: a key is a credential, its hash is not."""
    if not session_key:
        return ""
    return hashlib.sha256(f"kubeboard-session:{session_key}".encode()).hexdigest()[:32]


def add_listener(listener: Callable[[dict], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Callable[[dict], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def announce(user_id: int, *, ended_session_key: str | None = None) -> None:
    """Tell every stream of ``user_id`` to re-check, once the current transaction commits."""
    message = {"type": MESSAGE_TYPE, "user": user_id, "ended_session": session_fingerprint(ended_session_key)}

    def send() -> None:
        for listener in list(_listeners):
            try:
                listener(message)
            except Exception:
                log.exception("an access listener failed")
        group_send(access_group(user_id), message)

    transaction.on_commit(send)


# --- what ends a user's other sessions (core.sessions), besides re-checking their streams ----

# A change to one of these (a new password hash; losing active, staff or superuser) ends them.
SESSION_FIELDS = ("password", "is_active", "is_staff", "is_superuser")


def _end_sessions_after_commit(user_id: int, reasons: list[str]) -> None:
    from core.sessions import end_other_sessions

    transaction.on_commit(lambda: end_other_sessions(user_id, ", ".join(reasons)))


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def user_about_to_change(sender, instance, update_fields=None, raw: bool = False, **kwargs) -> None:
    # Compared with the stored row, so any path through the ORM counts: the admin, set_password
    # in a shell or another process, changepassword, reset_password.
    instance._kubeboard_session_reasons = []
    fields = [f for f in SESSION_FIELDS if update_fields is None or f in update_fields]
    if raw or instance.pk is None or not fields:
        return
    old = sender._default_manager.filter(pk=instance.pk).values(*fields).first()
    if old is None:
        return
    reasons = instance._kubeboard_session_reasons
    if "password" in old and old["password"] != instance.password:
        reasons.append("password changed")
    reasons.extend(f"{f} removed" for f in fields if f != "password" and old[f] and not getattr(instance, f))


@receiver(pre_save, sender=TeamMembership)
def membership_about_to_change(sender, instance: TeamMembership, raw: bool = False, **kwargs) -> None:
    instance._kubeboard_session_reasons = []
    if raw or instance.pk is None:
        return
    old_role = TeamMembership.objects.filter(pk=instance.pk).values_list("role", flat=True).first()
    if old_role is not None and old_role != instance.role:
        instance._kubeboard_session_reasons.append(f"role changed from {old_role} to {instance.role}")


@receiver(post_delete, sender=TeamMembership)
def membership_deleted(sender, instance: TeamMembership, **kwargs) -> None:
    announce(instance.user_id)


@receiver(post_save, sender=TeamMembership)
def membership_changed(sender, instance: TeamMembership, created: bool, **kwargs) -> None:
    if not created:  # a new membership only grants; a changed role may take VIEW away
        announce(instance.user_id)
    reasons = getattr(instance, "_kubeboard_session_reasons", None)
    if reasons:
        _end_sessions_after_commit(instance.user_id, reasons)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def user_changed(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    # Deactivation or a lost superuser flag; a login only touches last_login.
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    announce(instance.pk)
    reasons = getattr(instance, "_kubeboard_session_reasons", None)
    if reasons:
        _end_sessions_after_commit(instance.pk, reasons)


@receiver(post_delete, sender=settings.AUTH_USER_MODEL)
def user_deleted(sender, instance, **kwargs) -> None:
    announce(instance.pk)


@receiver(user_logged_out)
def user_logged_out_handler(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    session = getattr(request, "session", None)
    # Only this browser's streams end: the session is flushed right after this signal.
    announce(user.pk, ended_session_key=getattr(session, "session_key", None))

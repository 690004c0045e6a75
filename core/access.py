"""Telling open streams that a user's access may have shrunk, so they are re-checked at once.

A user removed from a team (their ``TeamMembership`` deleted), given another role, deactivated
or logged out must not keep receiving a live operation stream. Each such change announces the
user here after it commits: to every web process through the channel layer group
``access_group(user_id)`` when there is a layer (Redis), and to the listeners of this process
(the embedded mode, where the web process itself made the change). Streams re-check the user
with ``core.permissions`` and close the ones no longer allowed; a change that bypasses these
signals (a raw SQL update, another process in the embedded mode) is caught by the streams'
periodic re-check instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save
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


@receiver(post_delete, sender=TeamMembership)
def membership_deleted(sender, instance: TeamMembership, **kwargs) -> None:
    announce(instance.user_id)


@receiver(post_save, sender=TeamMembership)
def membership_changed(sender, instance: TeamMembership, created: bool, **kwargs) -> None:
    if not created:  # a new membership only grants; a changed role may take VIEW away
        announce(instance.user_id)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def user_changed(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    # Deactivation or a lost superuser flag; a login only touches last_login.
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    announce(instance.pk)


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

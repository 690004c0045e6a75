"""Ending a user's sessions when their password, standing or role changes.

A new password, a deactivation, a lost staff or superuser flag, or another role in a team
ends every session of that user except the one making the change for themselves (Django's
``update_session_auth_hash`` then keeps that one valid). The sessions are deleted from the
session store, so it does not matter which process made the change (the admin, a management
command, the ORM in a shell): every open stream of a deleted session is closed by the streams'
re-check (``operations.fanout.access_verdicts``, at once in the process that made the change,
within ``STREAM_ACCESS_CHECK_SECONDS`` elsewhere), and its next HTTP request is sent to log in.

A change the model signals never see (a raw SQL update of the password) is still caught: the
re-check compares each session's stored password hash with the user's current one, as Django
does for every HTTP request (``session_still_valid``).
"""

from __future__ import annotations

import logging
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.utils import timezone
from django.utils.crypto import constant_time_compare

log = logging.getLogger(__name__)

DATABASE_ENGINES = ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db")


def _store_class():
    return import_module(settings.SESSION_ENGINE).SessionStore


def sessions_in_database() -> bool:
    return settings.SESSION_ENGINE in DATABASE_ENGINES


def session_keys_of(user_id: int) -> list[str]:
    """The keys of ``user_id``'s unexpired sessions (sessions name their user only inside their
    signed data, so every unexpired session is read once: a rare, administrative event)."""
    if not sessions_in_database():
        return []
    store = _store_class()
    wanted = str(user_id)
    found = []
    rows = (
        store.get_model_class()
        .objects.filter(expire_date__gt=timezone.now())
        .values_list("session_key", "session_data")
    )
    for key, data in rows.iterator(chunk_size=500):
        if str(store().decode(data).get(SESSION_KEY)) == wanted:
            found.append(key)
    return found


def _current_session_of(user_id: int) -> str | None:
    """The session of the request being handled, if that request is ``user_id``'s own."""
    from core.requests import current_request

    request = current_request()
    user = getattr(request, "user", None)
    session = getattr(request, "session", None)
    if session is None or not getattr(user, "is_authenticated", False) or user.pk != user_id:
        return None
    return session.session_key


def end_other_sessions(user_id: int, reason: str) -> int:
    """Delete every session of ``user_id`` but the current request's own; returns how many.

    Then tells the open streams to re-check (``core.access.announce``)."""
    from core.access import announce

    # Read now, not when the change was saved: update_session_auth_hash may have cycled the key.
    keep = _current_session_of(user_id)
    store = _store_class()
    ended = 0
    for key in session_keys_of(user_id):
        if key != keep:
            store(session_key=key).delete()
            ended += 1
    if ended:
        log.info("ended %s session(s) of user %s: %s", ended, user_id, reason)
    announce(user_id)
    return ended


def session_still_valid(session_data: dict, user) -> bool:
    """False if the session was made for another password (or another user) than ``user``'s now.

    A session without a stored hash (made by code, not a login) is left to the other checks."""
    stored = session_data.get(HASH_SESSION_KEY)
    owner = session_data.get(SESSION_KEY)
    if owner is not None and str(owner) != str(user.pk):
        return False
    if not stored:
        return True
    if constant_time_compare(stored, user.get_session_auth_hash()):
        return True
    return any(constant_time_compare(stored, fallback) for fallback in user.get_session_auth_fallback_hash())


def decode(session_data: str) -> dict:
    return _store_class()().decode(session_data)

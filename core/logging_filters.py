"""Log filters: a refused request (403) is one line saying who, where and why.

Django logs every ``PermissionDenied`` as a WARNING with the exception's full traceback
(``django.request``), and a CSRF failure on ``django.security.csrf``. A refusal is the
permission rules working, not a fault: a traceback per refusal buries the real errors.
This filter rewrites any 403 record into

    forbidden: user=alice path=/clusters/c1/initialize/ reason=your role in team blue does not allow 'operate'

and drops its traceback. It is attached to the loggers that write them and to the console
handler (``settings.LOGGING``), so the other handlers see the same one line.
"""

from __future__ import annotations

import logging

MAX_FIELD_CHARS = 300


def _clean(value: object) -> str:
    # One line whatever a client put in the path; long values cut.
    text = str(value).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "…"


def _user(request) -> str:
    user = getattr(request, "user", None)
    try:
        if user is not None and user.is_authenticated:
            return user.get_username()
    except Exception:  # a broken session must not break logging
        return "unknown"
    return "anonymous"


def _reason(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[1] is not None:
        return str(record.exc_info[1]) or "permission denied"
    if record.name == "django.security.csrf" and record.args:
        return f"CSRF check failed: {record.args[0]}"  # Django's "Forbidden (%s): %s"
    return "forbidden"


class ForbiddenOneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) != 403 or getattr(record, "_kubeboard_one_line", False):
            return True
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if path is None:
            return True
        record.msg = "forbidden: user=%s path=%s reason=%s"
        record.args = (_clean(_user(request)), _clean(path), _clean(_reason(record)))
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        record._kubeboard_one_line = True
        return True

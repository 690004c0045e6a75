"""The web request being handled, for code below the views that must know it (``core.sessions``
keeps the current request's own session when it ends a user's others). Set by the request
middleware (``audit.middleware.RequestContextMiddleware``, which also opens the audit context)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest

_current: ContextVar[HttpRequest | None] = ContextVar("kubeboard_request", default=None)


def current_request() -> HttpRequest | None:
    return _current.get()


@contextmanager
def handling(request: HttpRequest) -> Iterator[HttpRequest]:
    token = _current.set(request)
    try:
        yield request
    finally:
        _current.reset(token)

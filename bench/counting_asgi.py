"""Kubeboard's ASGI application, plus a count of every SQL statement the process runs.

For bench_fanout.py only: ``daphne bench.counting_asgi:application``. Every statement that
passes Django's cursor in this web process (any thread: the follower's database thread, the
consumers' access checks, session and user lookups) is counted; ``GET /__bench__/queries``
answers ``{"queries": N}``. SQLite's per-connection PRAGMAs bypass the cursor and are not
counted (the follower keeps its one connection open, so there are few).
"""

from __future__ import annotations

import cProfile
import json
import os
import threading

from django.db.backends.utils import CursorWrapper

from config.asgi import application as kubeboard

_count = 0
_lock = threading.Lock()
_execute = CursorWrapper.execute
_executemany = CursorWrapper.executemany


def _counted_execute(self, sql, params=None):
    global _count
    with _lock:
        _count += 1
    return _execute(self, sql, params)


def _counted_executemany(self, sql, param_list):
    global _count
    with _lock:
        _count += 1
    return _executemany(self, sql, param_list)


CursorWrapper.execute = _counted_execute
CursorWrapper.executemany = _counted_executemany


_profile = None
if os.environ.get("KUBEBOARD_BENCH_PROFILE"):
    # The event loop's thread only: where the fan-out runs.
    _profile = cProfile.Profile()
    _profile.enable()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/__bench__/profile" and _profile is not None:
        _profile.disable()
        _profile.dump_stats(os.environ["KUBEBOARD_BENCH_PROFILE"])
        _profile.enable()
        scope = dict(scope, path="/__bench__/queries")
    if scope["type"] == "http" and scope["path"] == "/__bench__/queries":
        body = json.dumps({"queries": _count}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    await kubeboard(scope, receive, send)

"""Sending a message to a channel-layer group from synchronous code (workers, signal handlers).

``async_to_sync(layer.group_send)`` outside a web server starts a new event loop for every
call, and channels-redis keeps its connections per event loop: every published batch would
open a new Redis connection. Here each process has one long-lived event loop in a daemon
thread, so its connections are reused. The in-memory layer (tests, one process) is bound to
the loop that created its queues, so it keeps using ``async_to_sync``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 5.0

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _loop_lock:
        # A forked child (django-q2 workers) must not reuse its parent's loop or connections.
        if _loop is None or _loop_pid != os.getpid() or not _loop.is_running():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="kubeboard-publisher", daemon=True).start()
            ready.wait(5)
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def group_send(group: str, message: dict) -> bool:
    """Send ``message`` to ``group``; False (and a warning) if there is no layer or it failed.

    Blocks until the layer took the message, so two calls from one thread arrive in order.
    """
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        if isinstance(layer, InMemoryChannelLayer):
            async_to_sync(layer.group_send)(group, message)
        else:
            future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _publisher_loop())
            future.result(SEND_TIMEOUT_SECONDS)
    except Exception as exc:
        _complain(group, exc)
        return False
    return True


_complaints = {"at": 0.0, "suppressed": 0}
COMPLAIN_EVERY_SECONDS = 10.0


def _complain(group: str, exc: Exception) -> None:
    # While Redis is down every batch fails: say so every few seconds, not for every batch.
    now = time.monotonic()
    if now - _complaints["at"] < COMPLAIN_EVERY_SECONDS:
        _complaints["suppressed"] += 1
        return
    suppressed, _complaints["suppressed"], _complaints["at"] = _complaints["suppressed"], 0, now
    more = f" ({suppressed} more failed sends since the last warning)" if suppressed else ""
    log.warning("could not send to channel-layer group %s: %s: %s%s", group, type(exc).__name__, exc, more)

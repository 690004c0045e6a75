"""The one wait-until-deadline loop: ask, and ask again every few seconds, until an answer,
the deadline or a cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimedOut(TimeoutError):
    """The deadline passed without an answer; the caller words the message (it knows what it saw)."""


class WaitCancelled(InterruptedError):
    """``cancel`` was set while waiting."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 2.0,
    cancel: threading.Event | None = None,
    waiting: Callable[[], None] | None = None,
) -> T:
    """``probe()`` until it returns something other than None, and return that.

    The deadline is checked after a probe said "not yet", so even a short timeout asks at
    least once. ``waiting`` runs once, after the first "not yet" (to say what is awaited).
    Raises ``WaitTimedOut`` past the deadline, ``WaitCancelled`` once ``cancel`` is set;
    whatever ``probe`` raises goes through.
    """
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        answer = probe()
        if answer is not None:
            return answer
        if waiting is not None and not announced:
            waiting()
            announced = True
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"no answer after {timeout} s")
        if cancel is None:
            time.sleep(interval)
        elif cancel.wait(interval):
            raise WaitCancelled("cancelled")

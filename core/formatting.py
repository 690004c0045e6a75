"""How every page, log download and terminal writes durations, times and status words."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

# One word per state, whatever the object (operation, phase, attempt, audit outcome): the pages
# and the live script (which reads this table from the page) never disagree.
STATUS_WORDS: dict[str, str] = {
    "pending": "Pending",
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Succeeded",
    "success": "Succeeded",
    "failed": "Failed",
    "failure": "Failed",
    "denied": "Refused",
    "skipped": "Skipped",
    "cancelled": "Cancelled",
    "interrupted": "Interrupted",
}


def status_word(status: str) -> str:
    return STATUS_WORDS.get(status, status.replace("-", " ").replace("_", " ").capitalize() if status else "")


def seconds_text(value: float | timedelta | None) -> str:
    """``0.96 s``, ``12.3 s``, ``2 min 5 s``, ``1 h 3 min``; "" for None."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


_DURATION_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def duration_words(value: float | timedelta | None) -> str:
    """A length of time as people say it: ``15 minutes``, ``2 hours 30 minutes``, ``24 hours``,
    ``7 days``, ``2 days 12 hours``, ``45 seconds`` (whole seconds; "" for None). Days start at
    two, as people say "36 hours" rather than "1 day 12 hours".

    For configured lengths (a TTL, a lockout); a measured run time is ``seconds_text``."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if abs(seconds) < 60 and seconds != int(seconds):  # a timeout of 0.5 or 1.5 seconds
        return f"{seconds:.3g} seconds"
    whole = int(round(abs(seconds)))
    if whole == 0:
        return "0 seconds"
    parts = []
    for name, size in _DURATION_UNITS:
        if name == "day" and whole < 2 * size:
            continue
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count} {name}" + ("" if count == 1 else "s"))
    return ("minus " if seconds < 0 else "") + " ".join(parts)


def time_text(value: datetime | None, *, seconds: bool = True) -> str:
    """``2026-11-27 07:54:43 UTC``: always with the time zone (the server's, settings.TIME_ZONE)."""
    if value is None:
        return ""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z").strip()


def relative_text(value: datetime | None, now: datetime | None = None) -> str:
    """``just now``, ``45 s ago``, ``3 min ago``, ``2 h ago``, ``5 days ago``, ``in 3 min``."""
    if value is None:
        return ""
    delta = ((now or timezone.now()) - value).total_seconds()
    future, seconds = delta < 0, abs(delta)
    if seconds < 5:
        return "just now"
    if seconds < 60:
        amount = f"{int(seconds)} s"
    elif seconds < 3600:
        amount = f"{int(seconds // 60)} min"
    elif seconds < 86400 * 2:
        amount = f"{int(seconds // 3600)} h"
    elif seconds < 86400 * 60:
        amount = f"{int(seconds // 86400)} days"
    elif seconds < 86400 * 730:
        amount = f"{int(seconds // (86400 * 30))} months"
    else:
        amount = f"{int(seconds // (86400 * 365))} years"
    return f"in {amount}" if future else f"{amount} ago"

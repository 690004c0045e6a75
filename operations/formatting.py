"""Human text for durations and events, shared by the pages, the log download and the terminal."""

from __future__ import annotations

from core.formatting import seconds_text
from operations.models import Event

__all__ = ["event_line", "seconds_text", "settings_changes"]


def event_line(event: Event) -> str:
    """One event as one (or a few) lines of plain text, with phase markers for state changes."""
    where = f"{event.group}:{event.phase}" if event.group else event.phase
    time = event.created.strftime("%H:%M:%S.%f")[:-3]
    data = event.data or {}
    if event.kind == Event.Kind.PHASE:
        status = data.get("status", "")
        facts = []
        if data.get("attempt", 1) > 1:
            facts.append(f"attempt {data['attempt']}")
        if "duration" in data:
            facts.append(seconds_text(data["duration"]))
        if data.get("exit_status") is not None:
            facts.append(f"exit status {data['exit_status']}")
        if data.get("changes"):
            facts.append("changed: " + "; ".join(data["changes"]))
        text = f"{time} ==> {where}: {status}" + (f" ({', '.join(facts)})" if facts else "")
        if data.get("error"):
            text += f"\n             {data['error']}"
        if data.get("hint"):
            text += f"\n             what to do: {data['hint']}"
        return text
    if event.kind == Event.Kind.STATUS:
        return f"{time} === operation {data.get('status', '')}: {event.message}"
    level = "" if event.level in (Event.Level.INFO, Event.Level.DEBUG) else f"{event.level.upper()} "
    prefix = f"[{where}] " if where else ""
    return f"{time} {prefix}{level}{event.message}"


def settings_changes(before: dict, after: dict) -> list[str]:
    """What differs between two attempts' settings, one line per setting:
    "ignore-preflight-errors + ImagePull", "certificate-method pre-seed → upload-certs"."""
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, list | type(None)) and isinstance(new, list | type(None)):
            added = [item for item in new or [] if item not in (old or [])]
            removed = [item for item in old or [] if item not in (new or [])]
            parts = [f"+ {', '.join(map(str, added))}"] if added else []
            parts += [f"− {', '.join(map(str, removed))}"] if removed else []
            if parts:
                changes.append(f"{name} {' '.join(parts)}")
            continue
        changes.append(
            f"{name} {old if old not in (None, '') else 'none'} → {new if new not in (None, '') else 'none'}"
        )
    return changes

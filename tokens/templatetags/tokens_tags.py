from __future__ import annotations

from datetime import timedelta

from django import template

from core.formatting import duration_words

register = template.Library()


@register.filter(name="human_duration")
def human_duration(value) -> str:
    """7 days, 2 hours 30 minutes: a length of time in words."""
    return duration_words(value) if isinstance(value, timedelta) else ""


@register.filter(name="seconds")
def seconds(value) -> int:
    return int(value.total_seconds()) if isinstance(value, timedelta) else 0

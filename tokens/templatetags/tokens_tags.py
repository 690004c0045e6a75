from __future__ import annotations

from datetime import timedelta

from django import template

from tokens.policies import human

register = template.Library()


@register.filter(name="human_duration")
def human_duration(value) -> str:
    """24h, 2h30m, 7d."""
    return human(value) if isinstance(value, timedelta) else ""


@register.filter(name="seconds")
def seconds(value) -> int:
    return int(value.total_seconds()) if isinstance(value, timedelta) else 0

"""Presentation shared by every page: durations, times with their time zone, status words.

{% load kubeboard %}
{{ operation.duration|duration }}        0.96 s · 2 min 5 s
{{ policy.max_ttl|duration_words }}      7 days · 2 hours 30 minutes
{{ event.created|when }}                 <time …>2026-11-27 07:54:43 UTC</time> (hover: 3 min ago)
{{ cluster.created_at|when_ago }}        2026-11-27 07:54 UTC · 3 min ago
{{ op.status|status_word }}              Succeeded
{% status_badge op.status %}             <span class="status status-succeeded">Succeeded</span>
{{ report.hint|code_spans }}             compare it with <code>ssh-keygen -lf …</code> (from `ssh-keygen -lf …`)
"""

from __future__ import annotations

import json
from datetime import timedelta

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from core import formatting

register = template.Library()


@register.filter
def code_spans(text) -> str:
    """A message written for a terminal as well, where `command` is quoted with backticks: each
    quoted part becomes <code>, everything escaped. Unbalanced backticks are left as they are."""
    parts = str(text or "").split("`")
    if len(parts) % 2 == 0:
        return escape(text)
    return mark_safe(  # noqa: S308 - every part is escaped
        "".join(f"<code>{escape(part)}</code>" if index % 2 else escape(part) for index, part in enumerate(parts))
    )


@register.filter
def duration(value) -> str:
    return formatting.seconds_text(value)


_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


@register.filter
def duration_words(value, unit: str = "seconds") -> str:
    """A timedelta, or a number of ``unit`` (``{{ hours|duration_words:"hours" }}``), in words."""
    if isinstance(value, timedelta):
        return formatting.duration_words(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return formatting.duration_words(value * _UNIT_SECONDS[unit])
    return ""


@register.filter
def when(value, precision: str = "seconds") -> str:
    if not value:
        return "—"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        formatting.relative_text(value),
        formatting.time_text(value, seconds=precision != "minutes"),
    )


@register.filter
def when_ago(value) -> str:
    if not value:
        return "—"
    return format_html(
        '<time datetime="{}">{}</time> <span class="ago">· {}</span>',
        value.isoformat(),
        formatting.time_text(value, seconds=False),
        formatting.relative_text(value),
    )


@register.filter
def ago(value) -> str:
    return formatting.relative_text(value) if value else "—"


@register.filter
def status_word(value) -> str:
    return formatting.status_word(str(value or ""))


@register.simple_tag
def status_badge(status, label: str = "", element_id: str = "") -> str:
    word = label or formatting.status_word(str(status or ""))
    if element_id:
        return format_html(
            '<span class="status status-{}" id="{}" data-status="{}">{}</span>', status, element_id, status, word
        )
    return format_html('<span class="status status-{}">{}</span>', status, word)


@register.simple_tag
def status_words_json() -> str:
    """The vocabulary for page scripts (put in a data- attribute; escaped as any text)."""
    return json.dumps(formatting.STATUS_WORDS, sort_keys=True)

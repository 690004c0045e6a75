"""Audit details as a readable key/value list instead of a Python dict."""

from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join

register = template.Library()


def _text(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(item) for item in value) or "—"
    if isinstance(value, dict):
        # Nested details ("removed": {"events": 3, ...}) read as "events: 3, ..." rather than JSON.
        return ", ".join(f"{str(key).replace('_', ' ')}: {_text(item)}" for key, item in sorted(value.items())) or "—"
    return str(value)


@register.filter
def key_values(details) -> str:
    if not isinstance(details, dict) or not details:
        return ""
    items = format_html_join(
        "", "<dt>{}</dt><dd>{}</dd>", ((key.replace("_", " "), _text(value)) for key, value in sorted(details.items()))
    )
    return format_html('<dl class="kv">{}</dl>', items)


@register.filter
def changed_fields(changes) -> str:
    """``field: before → after`` for each changed field."""
    if not isinstance(changes, dict) or not changes:
        return ""
    before, after = changes.get("before") or {}, changes.get("after") or {}
    rows = (
        (key, _text(before.get(key)) if key in before else "", _text(after.get(key)) if key in after else "")
        for key in sorted(before.keys() | after.keys())
    )
    items = format_html_join("", "<dt>{}</dt><dd>{} → {}</dd>", rows)
    return format_html('<dl class="kv changes">{}</dl>', items)

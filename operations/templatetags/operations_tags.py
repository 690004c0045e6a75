import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from operations.formatting import seconds_text

register = template.Library()

# A page's address in parentheses, as hints write it: "(/clusters/beta/#reset-node)".
_PLACE = re.compile(r"\((/[\w./#?=-]*)\)")


@register.filter
def seconds(value) -> str:
    """A duration as people read it: ``0.96 s``, ``2 min 5 s``."""
    return seconds_text(value)


@register.filter
def linked(text) -> SafeString:
    """Text (a hint) with each page address in parentheses made a link to that page; the rest
    escaped. operation.js does the same for hints that arrive live."""
    escaped = escape(text or "")
    return mark_safe(_PLACE.sub(lambda m: f'(<a href="{m.group(1)}">{m.group(1)}</a>)', escaped))

from django import template

from operations.formatting import seconds_text

register = template.Library()


@register.filter
def seconds(value) -> str:
    """A duration as people read it: ``0.96 s``, ``2 min 5 s``."""
    return seconds_text(value)

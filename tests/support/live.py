"""The cluster page's live parts as the browser sees them (clusters.live)."""

from __future__ import annotations

import re

_VERSION_INPUT = re.compile(r'<input type="hidden" name="([\w-]+)" value="([0-9a-f]+)">')


def page_versions(html: str) -> dict[str, str]:
    """The versions a cluster page or a poll's answer carries: what htmx sends with the next poll."""
    return dict(_VERSION_INPUT.findall(html))

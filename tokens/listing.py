"""`kubeadm token list`'s text output, reproduced exactly (for `manage.py token list`).

Source: cmd/kubeadm/app/cmd/token.go (formatBootstrapToken, tokenTextPrinter) and
k8s.io/apimachinery/pkg/util/duration (ShortHumanDuration), checked against the real
kubeadm v1.37.2: each token is printed through its own tabwriter (minwidth 10, tabwidth 4,
padding 3, pad ' '), the header flushed together with the first token; TTL, USAGES and
DESCRIPTION are pre-padded to 9, 22 and 56 characters.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

COLUMNS = ("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")
MIN_WIDTH = 10
PADDING = 3


@dataclass(frozen=True)
class ListedToken:
    token: str  # "id.secret", or "id.****************" when the secret is withheld
    expires: datetime.datetime | None
    usages: tuple[str, ...]
    description: str
    groups: tuple[str, ...]


def short_human_duration(delta: datetime.timedelta) -> str:
    """duration.ShortHumanDuration."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def _cells(token: ListedToken, now: datetime.datetime) -> list[str]:
    ttl, expires = "<forever>", "<never>"
    if token.expires is not None:
        ttl = short_human_duration(token.expires - now)
        expires = token.expires.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # kubeadm orders usages by their Secret keys (authentication before signing).
    usages = ",".join(sorted(token.usages)) or "<none>"
    return [
        token.token,
        f"{ttl:<9}",
        expires,
        f"{usages:<22}",
        f"{token.description or '<none>':<56}",
        ",".join(token.groups) or "<none>",
    ]


def _flush(lines: list[list[str]]) -> str:
    """One tabwriter block: every tab-terminated cell padded to its column's width."""
    widths = []
    for column in range(len(COLUMNS) - 1):
        widest = max(len(line[column]) for line in lines)
        widths.append(max(MIN_WIDTH, widest + PADDING))
    out = []
    for line in lines:
        text = "".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + line[-1]
        out.append(text + "\n")
    return "".join(out)


def format_token_list(tokens: list[ListedToken], *, now: datetime.datetime) -> str:
    if not tokens:
        return ""  # kubeadm prints the header with the first token, so nothing at all
    blocks = [_flush([list(COLUMNS), _cells(tokens[0], now)])]
    blocks += [_flush([_cells(token, now)]) for token in tokens[1:]]
    return "".join(blocks)

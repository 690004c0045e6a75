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

from kubeadm.durations import short_human_duration
from kubeadm.tabwriter import tabwriter

COLUMNS = ("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")


@dataclass(frozen=True)
class ListedToken:
    token: str  # "id.secret", or "id.****************" when the secret is withheld
    expires: datetime.datetime | None
    usages: tuple[str, ...]
    description: str
    groups: tuple[str, ...]


def _line(token: ListedToken, now: datetime.datetime) -> str:
    ttl, expires = "<forever>", "<never>"
    if token.expires is not None:
        ttl = short_human_duration(token.expires - now)
        expires = token.expires.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # kubeadm orders usages by their Secret keys (authentication before signing).
    usages = ",".join(sorted(token.usages)) or "<none>"
    cells = [
        token.token,
        f"{ttl:<9}",
        expires,
        f"{usages:<22}",
        f"{token.description or '<none>':<56}",
        ",".join(token.groups) or "<none>",
    ]
    return "\t".join(cells)


def format_token_list(tokens: list[ListedToken], *, now: datetime.datetime) -> str:
    if not tokens:
        return ""  # kubeadm prints the header with the first token, so nothing at all
    blocks = [tabwriter(["\t".join(COLUMNS), _line(tokens[0], now)])]
    blocks += [tabwriter([_line(token, now)]) for token in tokens[1:]]
    return "".join(blocks)

"""Go ``time.Duration`` text, as metav1.Duration marshals it ("24h0m0s").

kubeadm writes every duration with Go's Duration.String() and reads them with
time.ParseDuration, so our YAML must use the same text to be byte-identical.
"""

from __future__ import annotations

import re
from datetime import timedelta

from kubeadm.errors import DurationError, DurationRangeError

_NS_PER = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")

# Go's time.Duration is int64 nanoseconds: about 292 years.
_MAX_NS = 2**63 - 1
MAX_DURATION = timedelta(microseconds=_MAX_NS // 1_000)
MAX_DURATION_TEXT = "2562047h47m16.854775807s (about 292 years)"
_MAX_WHOLE_DIGITS = len(str(_MAX_NS))
_MAX_FRACTION_DIGITS = 24


def _to_ns(d: timedelta) -> int:
    return (d.days * 86_400 + d.seconds) * 1_000_000_000 + d.microseconds * 1_000


def _fraction(value: int, digits: int) -> str:
    """Go's fmtFrac: value/10**digits with trailing zeros dropped."""
    whole, frac = divmod(value, 10**digits)
    text = str(whole)
    if frac:
        text += "." + str(frac).rjust(digits, "0").rstrip("0")
    return text


def format_duration(d: timedelta) -> str:
    """Format like Go's time.Duration.String(): 87600h0m0s, 4m0s, 1.5s, 0s."""
    ns = _to_ns(d)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 6)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _fraction(rest, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"


def _shown(text: str) -> str:
    """The text for an error message, cut short: a duration is a few characters, garbage may be
    megabytes."""
    return text if len(text) <= 40 else f"{text[:40]}… ({len(text)} characters)"


def parse_duration(text: str, *, field: str = "duration") -> timedelta:
    """Parse like Go's time.ParseDuration ("24h", "1h30m", "300ms", "0")."""
    if not isinstance(text, str) or not text:
        raise DurationError(field, 'a Go duration such as "24h0m0s"', text)
    s = text
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return timedelta(0)
    total_ns = 0
    pos = 0
    while pos < len(s):
        match = _PART_RE.match(s, pos)
        if match is None or match.group(1) in ("", "."):
            raise DurationError(field, 'a Go duration such as "24h0m0s" (units ns, us, ms, s, m, h)', _shown(text))
        number, unit = match.group(1), match.group(2)
        whole, _, frac = number.partition(".")
        whole = whole.lstrip("0")
        scale = _NS_PER[unit]
        # Go refuses what int64 nanoseconds cannot hold; the digit check comes first so that
        # int() never sees thousands of digits (Python refuses more than 4300 with ValueError).
        if len(whole) > _MAX_WHOLE_DIGITS:
            raise DurationRangeError(field, f"a duration of at most {MAX_DURATION_TEXT}", _shown(text))
        total_ns += int(whole or "0") * scale
        if frac:
            frac = frac[:_MAX_FRACTION_DIGITS]  # digits past a nanosecond change nothing
            total_ns += int(frac) * scale // (10 ** len(frac))
        if total_ns > _MAX_NS + (sign < 0):
            raise DurationRangeError(field, f"a duration of at most {MAX_DURATION_TEXT}", _shown(text))
        pos = match.end()
    return timedelta(microseconds=sign * (total_ns // 1_000))


def short_human_duration(d: timedelta) -> str:
    """apimachinery duration.ShortHumanDuration: the TTL of ``kubeadm token list`` and the RESIDUAL
    TIME of ``kubeadm certs check-expiration``."""
    seconds = int(d.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds // 60 < 60:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{int(hours / 24 / 365)}y"

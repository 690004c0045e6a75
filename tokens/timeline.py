"""Expiry at a glance: tokens and certificate keys on a time axis, drawn as server-side SVG.

Everything the template draws is computed here (positions in SVG units), so the template only
loops over rows, ticks and lines.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from datetime import timedelta

from core.formatting import duration_words
from tokens.models import BootstrapToken, CertificateKey, TokenPolicy
from tokens.policies import rotation_due_at

WIDTH = 960
LABEL_WIDTH = 150
ROW_HEIGHT = 24
AXIS_HEIGHT = 40
STEPS = [
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
]


@dataclass
class Mark:
    x: float
    label: str
    css: str = ""


@dataclass
class Row:
    y: float
    label: str
    state: str
    x: float
    width: float
    title: str
    marks: list[Mark] = field(default_factory=list)

    @property
    def text_y(self) -> float:
        return self.y + ROW_HEIGHT * 0.65

    @property
    def bar_y(self) -> float:
        return self.y + 5

    @property
    def bar_height(self) -> float:
        return ROW_HEIGHT - 10

    @property
    def bottom(self) -> float:
        return self.y + ROW_HEIGHT


@dataclass
class Timeline:
    start: datetime.datetime
    end: datetime.datetime
    rows: list[Row]
    ticks: list[Mark]
    lines: list[Mark]
    now_x: float
    soon_x: float
    soon_width: float
    width: int = WIDTH
    label_width: int = LABEL_WIDTH

    @property
    def height(self) -> int:
        return AXIS_HEIGHT + ROW_HEIGHT * max(1, len(self.rows)) + 8

    @property
    def plot_top(self) -> int:
        return AXIS_HEIGHT

    @property
    def plot_bottom(self) -> int:
        return self.height - 4

    @property
    def axis_y(self) -> int:
        return AXIS_HEIGHT - 6

    @property
    def tick_label_y(self) -> int:
        return 12

    @property
    def now_label_y(self) -> int:
        return AXIS_HEIGHT - 2

    @property
    def plot_height(self) -> int:
        return self.plot_bottom - self.plot_top

    @property
    def threshold_label_y(self) -> int:
        return self.plot_bottom - 2

    @property
    def empty_label_y(self) -> int:
        return self.plot_top + 16


def _fmt(when: datetime.datetime, step: timedelta) -> str:
    return when.strftime("%m-%d" if step >= timedelta(days=1) else "%H:%M")


def build(
    policy: TokenPolicy,
    tokens: list[BootstrapToken],
    keys: list[CertificateKey],
    *,
    now: datetime.datetime,
) -> Timeline:
    live = [t for t in tokens if t.status == BootstrapToken.Status.ACTIVE and t.expires_at and t.expires_at > now]
    valid_keys = [k for k in keys if k.is_valid(now)]
    horizon = max([t.expires_at for t in live] + [k.expires_at for k in valid_keys] + [now + 2 * policy.rotate_before])
    end = min(horizon, now + policy.max_ttl) + timedelta(minutes=5)
    start = now - max((end - now) / 8, timedelta(minutes=10))
    span = (end - start).total_seconds()
    plot = WIDTH - LABEL_WIDTH - 10

    def x(when: datetime.datetime) -> float:
        clipped = min(max(when, start), end)
        return round(LABEL_WIDTH + plot * (clipped - start).total_seconds() / span, 1)

    rows: list[Row] = []
    for index, token in enumerate(live + valid_keys):
        y = AXIS_HEIGHT + index * ROW_HEIGHT
        if isinstance(token, CertificateKey):
            begin, finish = token.created_at, token.expires_at
            label, state = f"certificate key #{token.pk}", "certificate-key"
            title = f"certificate key, expires {finish:%Y-%m-%d %H:%M:%S} UTC"
            marks: list[Mark] = []
        else:
            begin, finish = token.created_at, token.expires_at
            label, state = token.token_id, token.state(now)
            title = f"{token.token_id} ({token.get_purpose_display()}), expires {finish:%Y-%m-%d %H:%M:%S} UTC"
            marks = []
            rotation = rotation_due_at(token, policy)
            if rotation is not None and rotation > start:
                marks.append(Mark(x(rotation), f"rotation at {rotation:%H:%M}", "rotation"))
            if token.retire_at is not None:
                marks.append(Mark(x(token.retire_at), f"retired at {token.retire_at:%H:%M}", "retire"))
        left = x(begin)
        rows.append(
            Row(y=y, label=label, state=state, x=left, width=max(x(finish) - left, 2.0), title=title, marks=marks)
        )
    step = next((s for s in STEPS if (end - start) / s <= 8), STEPS[-1])
    tick = datetime.datetime.fromtimestamp(
        (start.timestamp() // step.total_seconds() + 1) * step.total_seconds(), tz=datetime.UTC
    )
    ticks = []
    while tick < end:
        ticks.append(Mark(x(tick), _fmt(tick, step)))
        tick += step
    lines = []
    if now + policy.max_ttl <= end:
        lines.append(Mark(x(now + policy.max_ttl), f"max TTL {duration_words(policy.max_ttl)}", "max-ttl"))
    soon_end = x(now + policy.rotate_before)
    return Timeline(
        start=start,
        end=end,
        rows=rows,
        ticks=ticks,
        lines=lines,
        now_x=x(now),
        soon_x=x(now),
        soon_width=max(soon_end - x(now), 0),
    )

"""The activity chart, drawn on the server as inline SVG.

A pure function from counts to markup: no JavaScript, no chart library, nothing fetched
by the browser, so it renders under the strict Content-Security-Policy, prints, and is
testable as a string. Two panels share the day axis: unsubscribes per day stacked by
source, and pushes to Salesforce per day (sent, failed). The SVG has ``role="img"`` with
a ``<title>`` and ``<desc>`` summarising it; the page also renders the same numbers as a
table for screen readers and for anyone who wants the exact figures.

Colours come from CSS classes (``admin.css``, with a dark variant); the ``fill``
attributes are the light-mode fallback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape

from optsync.web.admin.labels import SOURCE_LABELS

WIDTH = 720
PANEL_HEIGHT = 150
LEFT = 44
RIGHT = 12
TOP = 24
GAP = 46
BOTTOM = 40

SOURCE_ORDER = ("page", "one_click", "api", "cli", "csv", "admin", "salesforce")
SOURCE_FILLS = {
    "page": "#1a5fb4",
    "one_click": "#2a7f9e",
    "api": "#7c4dbd",
    "cli": "#6b6b6b",
    "csv": "#a85d00",
    "admin": "#b5477c",
    "salesforce": "#00857a",
}
SENT_FILL = "#1e7a34"
FAILED_FILL = "#c01c28"


@dataclass(frozen=True)
class DayCounts:
    """One day's figures."""

    day: date
    unsubscribes: Mapping[str, int] = field(default_factory=dict)
    pushes_sent: int = 0
    pushes_failed: int = 0

    @property
    def unsubscribes_total(self) -> int:
        return sum(self.unsubscribes.values())


def sources_in(days: Sequence[DayCounts]) -> list[str]:
    """The sources present, in a fixed order (known sources first)."""
    seen = {s for d in days for s, n in d.unsubscribes.items() if n}
    known = [s for s in SOURCE_ORDER if s in seen]
    return known + sorted(seen - set(SOURCE_ORDER))


def _nice_max(value: int) -> int:
    """A round axis maximum at or above ``value`` whose quarters are whole numbers
    (4, 8, 12, 20, 40, 80, 120, 200, ...), so the five grid lines get exact labels."""
    magnitude = 1
    while True:
        for step in (4, 8, 12, 20):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def _axis(y0: float, height: float, top: int, label: str) -> list[str]:
    out = [
        f'<text class="chart-label" x="{LEFT}" y="{y0 - height - 8:.1f}" fill="#3d3d3d" '
        f'font-size="12">{escape(label)}</text>'
    ]
    for i in range(5):
        value = top * i // 4
        y = y0 - height * i / 4
        out.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="#d0d0d0" stroke-width="1"/>'
        )
        out.append(
            f'<text class="chart-tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="#3d3d3d" font-size="11">{value}</text>'
        )
    return out


def activity_svg(days: Sequence[DayCounts], *, title: str = "Activity") -> str:
    """The chart for ``days`` (oldest first) as one ``<svg>`` element."""
    n = max(1, len(days))
    slot = (WIDTH - LEFT - RIGHT) / n
    sources = sources_in(days)
    top_u = _nice_max(max((d.unsubscribes_total for d in days), default=0))
    top_p = _nice_max(max((max(d.pushes_sent, d.pushes_failed) for d in days), default=0))
    y_u = TOP + PANEL_HEIGHT
    y_p = y_u + GAP + PANEL_HEIGHT
    height = y_p + BOTTOM

    total_u = sum(d.unsubscribes_total for d in days)
    total_sent = sum(d.pushes_sent for d in days)
    total_failed = sum(d.pushes_failed for d in days)
    span = f"{days[0].day.isoformat()} to {days[-1].day.isoformat()}" if days else "no days"
    busiest = max(days, key=lambda d: d.unsubscribes_total, default=None)
    desc = (
        f"{len(days)} days, {span}. {total_u} unsubscribes"
        + (
            f" (busiest day {busiest.day.isoformat()} with {busiest.unsubscribes_total})"
            if busiest is not None and busiest.unsubscribes_total
            else ""
        )
        + f"; {total_sent} pushes sent to Salesforce and {total_failed} failed."
    )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" aria-labelledby="chart-title chart-desc" '
        f'preserveAspectRatio="xMidYMid meet">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(desc)}</desc>',
    ]
    parts += _axis(y_u, PANEL_HEIGHT, top_u, "Unsubscribes per day, by source")
    parts += _axis(y_p, PANEL_HEIGHT, top_p, "Pushes to Salesforce per day")

    bar_w = max(1.0, slot * 0.7)
    half = max(1.0, slot * 0.35)
    for i, d in enumerate(days):
        x = LEFT + i * slot + (slot - bar_w) / 2
        y = float(y_u)
        for source in sources:
            count = d.unsubscribes.get(source, 0)
            if not count:
                continue
            h = PANEL_HEIGHT * count / top_u
            y -= h
            label = f"{d.day.isoformat()}: {count} from {source}"
            parts.append(
                f'<rect class="bar src-{escape(source)}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{SOURCE_FILLS.get(source, "#555555")}"><title>{escape(label)}</title>'
                f"</rect>"
            )
        x2 = LEFT + i * slot + (slot - 2 * half) / 2
        for offset, count, cls, fill, what in (
            (0.0, d.pushes_sent, "sent", SENT_FILL, "sent"),
            (half, d.pushes_failed, "failed", FAILED_FILL, "failed"),
        ):
            if not count:
                continue
            h = PANEL_HEIGHT * count / top_p
            label = f"{d.day.isoformat()}: {count} pushes {what}"
            parts.append(
                f'<rect class="bar {cls}" x="{x2 + offset:.1f}" y="{y_p - h:.1f}" '
                f'width="{half:.1f}" height="{h:.1f}" fill="{fill}">'
                f"<title>{escape(label)}</title></rect>"
            )
        if (len(days) - 1 - i) % 7 == 0:  # weekly, counted back from the last day
            cx = LEFT + i * slot + slot / 2
            parts.append(
                f'<text class="chart-tick" x="{cx:.1f}" y="{y_p + 16}" text-anchor="middle" '
                f'fill="#3d3d3d" font-size="11">{d.day.strftime("%b %d")}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def legend(days: Sequence[DayCounts]) -> list[tuple[str, str]]:
    """(css class, label) pairs for the HTML legend under the chart."""
    items = [(f"src-{s}", SOURCE_LABELS.get(s, s)) for s in sources_in(days)]
    return [*items, ("sent", "Pushes sent"), ("failed", "Pushes failed")]

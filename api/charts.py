"""Server-rendered SVG trend charts with guideline bands (no JavaScript).

Pure: values in, SVG text out. Each chart has ``role="img"`` with a title and a description
summarising the data, and the page always shows the same readings as a table, so nothing is
available only as a picture.

Bands (sources in clinical-rules.md): blood pressure uses the KSH categories (§3.1; normal
<120/80, hypertension ≥140/90) and the home threshold 135/85 (§11 #2); glucose the target
80-130 mg/dL before meals and the hypoglycaemia line 70 (§4, §11 #9); body fat the
WHO-suggested 25 % / 35 % (men / women, display only, §5.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")

WIDTH, HEIGHT = 520, 250
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 14, 30
#: Room between the frame and the first and last moment of the period, so a reading at the
#: start or at the end of the period (a single reading measured just now) is drawn whole and
#: clear of the frame, never on its edge.
PAD_X = 16
#: How a reading kept out by the quality filters (clinical-rules.md §2) is drawn: an open
#: circle in the series' colour, never joined to the line.
EXCLUDED_LABEL = "품질 기준 제외 측정 / excluded by quality rules"


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: Sequence[tuple[datetime, float]]
    colour: str
    dashed: bool = False
    #: Readings the quality filters keep out of every rule (clinical-rules.md §2): time,
    #: value and why ("Q-04 움직임·커프·자세 오류 표시 / ..."). Drawn as open circles.
    excluded: Sequence[tuple[datetime, float, str]] = ()


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded value range, e.g. the target range."""

    low: float
    high: float
    label: str
    colour: str = "#e3f1e6"
    #: False: drawn as a strip along the value axis only, so it does not sit behind another
    #: series' points (the systolic target band would otherwise cover the diastolic readings)
    full_width: bool = True


@dataclass(frozen=True, slots=True)
class RefLine:
    value: float
    label: str
    colour: str = "#a4000f"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    series: Sequence[Series]
    start: datetime
    end: datetime
    bands: Sequence[Band] = field(default_factory=tuple)
    lines: Sequence[RefLine] = field(default_factory=tuple)
    y_floor: float | None = None
    y_ceiling: float | None = None


def _nice_range(
    values: Sequence[float], floor: float | None, ceiling: float | None
) -> tuple[float, float]:
    lo = min(values) if values else 0.0
    hi = max(values) if values else 1.0
    if floor is not None:
        lo = min(lo, floor)
    if ceiling is not None:
        hi = max(hi, ceiling)
    if hi - lo < 1e-9:
        hi = lo + 1
    pad = (hi - lo) * 0.08
    step = _step((hi - lo + 2 * pad) / 5)
    return (lo - pad) // step * step, -(-(hi + pad) // step) * step


def _step(raw: float) -> float:
    for unit in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500):
        if raw <= unit:
            return float(unit)
    return 1000.0


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"


def render(chart: Chart) -> str:
    """The chart as an inline SVG element."""
    values = [v for s in chart.series for _, v in s.points]
    values += [v for s in chart.series for _, v, _ in s.excluded]
    values += [b.low for b in chart.bands] + [b.high for b in chart.bands]
    values += [line.value for line in chart.lines]
    y_lo, y_hi = _nice_range(values, chart.y_floor, chart.y_ceiling)
    span = (chart.end - chart.start).total_seconds() or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    x0, x1 = LEFT + PAD_X, WIDTH - RIGHT - PAD_X

    def x(when: datetime) -> float:
        return x0 + (x1 - x0) * min(max((when - chart.start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        clamped = min(max(value, y_lo), y_hi)
        return TOP + plot_h * (1 - (clamped - y_lo) / (y_hi - y_lo))

    n_points = sum(len(s.points) + len(s.excluded) for s in chart.series)
    desc = _describe(chart, n_points)
    out = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t d" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="14" data-x0="{x0}" data-x1="{x1}" '
        f'data-start="{chart.start.timestamp():.0f}" data-end="{chart.end.timestamp():.0f}">',
        f'<title id="t">{escape(chart.title)}</title><desc id="d">{escape(desc)}</desc>',
    ]
    for band in chart.bands:
        top, bottom = y(band.high), y(band.low)
        width = plot_w if band.full_width else STRIP
        out.append(
            f'<rect x="{LEFT}" y="{top:.1f}" width="{width}" height="{bottom - top:.1f}" '
            f'fill="{band.colour}"><title>{escape(band.label)}</title></rect>'
        )
    step = _step((y_hi - y_lo) / 5)
    tick = y_lo
    while tick <= y_hi + 1e-9:
        ty = y(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="#d5d9de"/><text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" '
            f'fill="#333">{_fmt(tick)}</text>'
        )
        tick += step
    days = max(1, round(span / 86400))
    every = 7 if days <= 45 else 30 if days <= 200 else 60
    day = chart.start.astimezone(SEOUL).replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= chart.end:
        if day >= chart.start and (day.day == 1 if every >= 30 else day.weekday() == 0):
            tx = x(day)
            out.append(
                f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                f'stroke="#eceff2"/>'
                f'<text x="{tx:.1f}" y="{HEIGHT - 10}" text-anchor="middle" fill="#333">'
                f"{day.month}/{day.day}</text>"
            )
        day += timedelta(days=1)
    for index, line in enumerate(chart.lines):
        ly = y(line.value)
        # alternate the label side so lines close together (135 and 140) stay readable
        lx, anchor = (WIDTH - RIGHT - 4, "end") if index % 2 == 0 else (LEFT + 4, "start")
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ly:.1f}" y2="{ly:.1f}" '
            f'stroke="{line.colour}" stroke-dasharray="6 4" stroke-width="1.5"/>'
            f'<text x="{lx}" y="{ly - 4:.1f}" text-anchor="{anchor}" '
            f'fill="{line.colour}" paint-order="stroke" stroke="#fff" stroke-width="3">'
            f"{escape(line.label)}</text>"
        )
    for series in chart.series:
        pts = sorted(series.points)
        if not pts:
            continue
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        dash = ' stroke-dasharray="4 3"' if series.dashed else ""
        if len(pts) > 1:
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{series.colour}" '
                f'stroke-width="2"{dash}/>'
            )
        radius = 3 if len(pts) < 120 else 1.6
        for t, v in pts:
            # the value on hover (title) and on tap (data-v, shown by static/charts.js)
            shown = f"{series.label} {_fmt(v)} {chart.unit} · {t.astimezone(SEOUL):%m-%d %H:%M}"
            out.append(
                f'<circle class="valid" cx="{x(t):.1f}" cy="{y(v):.1f}" r="{radius}" '
                f'fill="{series.colour}" '
                f'data-v="{escape(shown)}"><title>{escape(shown)}</title></circle>'
            )
    for series in chart.series:
        for t, v, why in sorted(series.excluded):
            shown = (
                f"{series.label} {_fmt(v)} {chart.unit} · {t.astimezone(SEOUL):%m-%d %H:%M}"
                f" · 제외 / excluded: {why}"
            )
            out.append(
                f'<circle class="excluded" cx="{x(t):.1f}" cy="{y(v):.1f}" r="4.5" fill="#fff" '
                f'stroke="{series.colour}" stroke-width="2" data-v="{escape(shown)}">'
                f"<title>{escape(shown)}</title></circle>"
            )
    if n_points == 0:
        out.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
            f'font-size="20" fill="#4a4a4a" paint-order="stroke" stroke="#fff" '
            f'stroke-width="4">측정값 없음 / No readings</text>'
        )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#8a9099"/>'
    )
    out.append("</svg>")
    return "".join(out)


def _describe(chart: Chart, n_points: int) -> str:
    if n_points == 0:
        return f"{chart.title}: 측정값 없음 / no readings in this period"
    parts = []
    for series in chart.series:
        excluded = f", 품질 기준 제외 {len(series.excluded)}회" if series.excluded else ""
        if not series.points:
            if excluded:
                parts.append(f"{series.label}: 유효한 측정 없음{excluded}")
            continue
        latest = max(series.points)
        vals = [v for _, v in series.points]
        parts.append(
            f"{series.label}: {len(vals)}회, 최근 {_fmt(latest[1])} {chart.unit}, "
            f"범위 {_fmt(min(vals))}-{_fmt(max(vals))}{excluded}"
        )
    return f"{chart.title}. " + "; ".join(parts)


#: Width of a band drawn along the value axis only (``Band.full_width`` False).
STRIP = 10


def legend(chart: Chart) -> list[tuple[str, str, str]]:
    """(label, colour, kind) for the HTML legend under the chart; kind is "series", "band",
    "line" or "excluded" (the open circle of readings the quality filters keep out)."""
    items = [(s.label, s.colour, "series") for s in chart.series if s.points or s.excluded]
    items += [(b.label, b.colour, "band") for b in chart.bands]
    items += [(line.label, line.colour, "line") for line in chart.lines]
    if any(s.excluded for s in chart.series):
        items.append((EXCLUDED_LABEL, "#4a4a4a", "excluded"))
    return items

"""Charts as inline SVG, drawn on the server: no script, no font and no request leave the page.

Each function takes plain values and returns markup; every mark carries its values in `data-*`
attributes and a `<title>` (the tooltip), so a person can read them and a test can check them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

LEVEL_CLASS = {"ok": "ok", "warn": "warn", "alert": "alert"}
# Distinct curve colours (`class-<i>` in base.html), enough for the 10 classes a page draws.
CLASS_COLOURS = 10


@dataclass(frozen=True)
class Series:
    """One curve: its name (the legend), a CSS class, its points, and a marked point (the threshold)."""

    name: str
    css: str
    xs: Sequence[float]
    ys: Sequence[float]
    marked: tuple[float, float] | None = None


def _f(value: float) -> str:
    return f"{value:.1f}"


def curve_chart(
    title: str, x_label: str, y_label: str, series: Sequence[Series], diagonal: bool = False, size: int = 320
) -> Markup:
    """A unit-square line chart (ROC or precision-recall) of one or more curves."""
    pad, plot = 40, size - 50
    x = lambda v: pad + v * plot  # noqa: E731
    y = lambda v: 10 + (1 - v) * plot  # noqa: E731
    parts = [
        f'<svg class="chart curve-chart" role="img" viewBox="0 0 {size} {size}" width="{size}" '
        f'height="{size}" data-title="{escape(title)}"><title>{escape(title)}</title>',
        f'<rect class="frame" x="{pad}" y="10" width="{plot}" height="{plot}"/>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text class="tick" x="{_f(x(tick))}" y="{size - 24}">{tick:g}</text>')
        parts.append(
            f'<text class="tick" x="{pad - 6}" y="{_f(y(tick) + 4)}" text-anchor="end">{tick:g}</text>'
        )
    parts.append(f'<text class="axis" x="{pad + plot / 2}" y="{size - 6}">{escape(x_label)}</text>')
    parts.append(
        f'<text class="axis" transform="rotate(-90)" x="{-(10 + plot / 2)}" y="12">{escape(y_label)}</text>'
    )
    if diagonal:
        parts.append(f'<line class="chance" x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}"/>')
    for i, s in enumerate(series):
        points = " ".join(f"{_f(x(a))},{_f(y(b))}" for a, b in zip(s.xs, s.ys, strict=True))
        parts.append(
            f'<polyline class="curve {escape(s.css)}" data-series="{escape(s.name)}" '
            f'data-points="{len(s.xs)}" points="{points}"><title>{escape(s.name)}</title></polyline>'
        )
        if s.marked:
            mx, my = s.marked
            parts.append(
                f'<circle class="marker {escape(s.css)}" cx="{_f(x(mx))}" cy="{_f(y(my))}" r="4" '
                f'data-x="{mx:.4f}" data-y="{my:.4f}"><title>{escape(s.name)} at its threshold: '
                f"{x_label} {mx:.3f}, {y_label} {my:.3f}</title></circle>"
            )
        parts.append(
            f'<g class="legend"><rect class="swatch {escape(s.css)}" x="{pad + plot - 150}" '
            f'y="{plot - 14 - 16 * i}" width="10" height="10"/><text x="{pad + plot - 136}" '
            f'y="{plot - 5 - 16 * i}">{escape(s.name)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """`count` evenly spaced values from `low` to `high` (one value when they are equal)."""
    if high <= low:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def scatter_chart(
    title: str,
    x_label: str,
    y_label: str,
    xs: Sequence[float],
    ys: Sequence[float],
    reference: str = "diagonal",
    size: int = 320,
) -> Markup:
    """Points on axes scaled to their range, with a reference line: `diagonal` (y = x, both axes on
    one range: predicted against actual) or `zero` (y = 0: residuals against the prediction)."""
    x_low, x_high = min(xs, default=0.0), max(xs, default=1.0)
    y_low, y_high = min(ys, default=0.0), max(ys, default=1.0)
    if reference == "diagonal":
        x_low = y_low = min(x_low, y_low)
        x_high = y_high = max(x_high, y_high)
    else:
        y_low, y_high = min(y_low, 0.0), max(y_high, 0.0)
    pad, plot = 48, size - 58
    x = lambda v: pad + (v - x_low) / ((x_high - x_low) or 1) * plot  # noqa: E731
    y = lambda v: 10 + (1 - (v - y_low) / ((y_high - y_low) or 1)) * plot  # noqa: E731
    parts = [
        f'<svg class="chart scatter-chart" role="img" viewBox="0 0 {size} {size}" width="{size}" '
        f'height="{size}" data-title="{escape(title)}" data-points="{len(xs)}">'
        f"<title>{escape(title)}</title>",
        f'<rect class="frame" x="{pad}" y="10" width="{plot}" height="{plot}"/>',
    ]
    for tick in _ticks(x_low, x_high):
        parts.append(
            f'<text class="tick" x="{_f(x(tick))}" y="{size - 24}" text-anchor="middle">{tick:.3g}</text>'
        )
    for tick in _ticks(y_low, y_high):
        parts.append(
            f'<text class="tick" x="{pad - 4}" y="{_f(y(tick) + 4)}" text-anchor="end">{tick:.3g}</text>'
        )
    parts.append(f'<text class="axis" x="{pad + plot / 2}" y="{size - 6}">{escape(x_label)}</text>')
    parts.append(
        f'<text class="axis" transform="rotate(-90)" x="{-(10 + plot / 2)}" y="12">{escape(y_label)}</text>'
    )
    if reference == "diagonal":
        parts.append(
            f'<line class="chance" x1="{_f(x(x_low))}" y1="{_f(y(x_low))}" '
            f'x2="{_f(x(x_high))}" y2="{_f(y(x_high))}"/>'
        )
    else:
        parts.append(f'<line class="chance" x1="{pad}" y1="{_f(y(0))}" x2="{pad + plot}" y2="{_f(y(0))}"/>')
    parts.extend(
        f'<circle class="point" cx="{_f(x(a))}" cy="{_f(y(b))}" r="1.6">'
        f"<title>{a:.4g}, {b:.4g}</title></circle>"
        for a, b in zip(xs, ys, strict=True)
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def class_series(roc: dict) -> list[Series]:
    """One ROC curve per class (`{class: points}`), each in its own colour (`class-0` ...)."""
    return [
        Series(name, f"class-{i % CLASS_COLOURS}", points.fpr, points.tpr)
        for i, (name, points) in enumerate(roc.items())
    ]


def histogram(counts: Sequence[int], width: int = 100, height: int = 24, label: str = "") -> Markup:
    """Bars of rows per tenth of [0, 1] (a score histogram)."""
    top = max(counts, default=0) or 1
    bar = width / max(len(counts), 1)
    bins = len(counts)
    parts = [
        f'<svg class="chart histogram" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'data-bins="{bins}" data-rows="{sum(counts)}"><title>{escape(label)}</title>'
    ]
    for i, n in enumerate(counts):
        h = height * n / top
        parts.append(
            f'<rect class="bar" x="{_f(i * bar)}" y="{_f(height - h)}" width="{_f(bar - 1)}" '
            f'height="{_f(h)}" data-rows="{n}"><title>scores {i / bins:.1f}–{(i + 1) / bins:.1f}: '
            f"{n} rows</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class RealisedPoint:
    """One matured day: the realised metric, its bounds, the holdout figure, whether it decayed."""

    ds: dt.date
    estimate: float | None
    lower: float | None
    upper: float | None
    expected: float | None
    decayed: bool


def realised_chart(title: str, metric: str, points: Sequence[RealisedPoint], width: int = 900) -> Markup:
    """Days along x; per day the realised estimate (a dot) and its interval (a bar), and the
    expectation (the holdout figure of the day's version) as a dashed line."""
    height, pad, top = 240, 56, 10
    values = [v for p in points for v in (p.lower, p.upper, p.expected, p.estimate) if v is not None]
    low, high = min(values, default=0.0), max(values, default=1.0)
    high = high if high > low else low + 1
    plot_w, plot_h = width - pad - 20, height - top - 40
    step = plot_w / max(len(points), 1)
    x = lambda i: pad + step * (i + 0.5)  # noqa: E731
    y = lambda v: top + (1 - (v - low) / (high - low)) * plot_h  # noqa: E731
    parts = [
        f'<svg class="chart realised-chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" data-days="{len(points)}"><title>{escape(title)}</title>',
        f'<rect class="frame" x="{pad}" y="{top}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for tick in _ticks(low, high):
        parts.append(
            f'<text class="tick" x="{pad - 4}" y="{_f(y(tick) + 4)}" text-anchor="end">{tick:.3g}</text>'
        )
    parts.append(
        f'<text class="axis" transform="rotate(-90)" x="{-(top + plot_h / 2)}" y="12">{escape(metric)}</text>'
    )
    expected = " ".join(
        f"{_f(x(i))},{_f(y(p.expected))}" for i, p in enumerate(points) if p.expected is not None
    )
    if expected:
        parts.append(
            f'<polyline class="expected" points="{expected}"><title>expected (holdout)</title></polyline>'
        )
    for i, p in enumerate(points):
        if p.lower is not None and p.upper is not None:
            parts.append(
                f'<line class="interval" x1="{_f(x(i))}" y1="{_f(y(p.lower))}" '
                f'x2="{_f(x(i))}" y2="{_f(y(p.upper))}"/>'
            )
        if p.estimate is not None:
            state = " decayed" if p.decayed else ""
            parts.append(
                f'<circle class="realised{state}" cx="{_f(x(i))}" cy="{_f(y(p.estimate))}" r="3.5" '
                f'data-ds="{p.ds}" data-estimate="{p.estimate:.4f}" data-decayed="{str(p.decayed).lower()}">'
                f"<title>{escape(_realised_text(p, metric))}</title></circle>"
            )
    tick_every = max(1, len(points) // 8)
    for i in range(0, len(points), tick_every):
        parts.append(
            f'<text class="tick" x="{_f(x(i))}" y="{height - 22}" text-anchor="middle">{points[i].ds}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _realised_text(point: RealisedPoint, metric: str) -> str:
    """A matured day's tooltip: the figure, its interval, the expectation, a decay."""
    text = f"{point.ds}: {metric} {point.estimate:.4f}"
    if point.lower is not None and point.upper is not None:
        text += f" [{point.lower:.4f}, {point.upper:.4f}]"
    if point.expected is not None:
        text += f", expected {point.expected:.4f}"
    return text + ("; decayed" if point.decayed else "")


def drift_heatmap(
    features: Sequence[str], days: Sequence[dt.date], cells: Sequence[tuple[dt.date, str, float, str]]
) -> Markup:
    """Features (rows) × days (columns), each cell coloured by its grade (`ok`, `warn`, `alert`)."""
    label_width, cell_h = 130, 14
    cell_w = max(3.0, min(24.0, 1000 / max(len(days), 1)))
    column = {day: i for i, day in enumerate(days)}
    row = {feature: i for i, feature in enumerate(features)}
    width = label_width + cell_w * len(days) + 70  # room for the last date label
    height = cell_h * len(features) + 30
    parts = [
        f'<svg class="chart heatmap" viewBox="0 0 {_f(width)} {height}" width="{_f(width)}" '
        f'height="{height}" data-features="{len(features)}" data-days="{len(days)}">'
        "<title>Drift: PSI per feature and day, against the training rows of the day's model</title>"
    ]
    for feature, i in row.items():
        parts.append(
            f'<text class="feature" x="{label_width - 6}" y="{i * cell_h + 11}" text-anchor="end">'
            f"{escape(feature)}</text>"
        )
    for ds, feature, psi, level in cells:
        parts.append(
            f'<rect class="cell {LEVEL_CLASS.get(level, "unknown")}" '
            f'x="{_f(label_width + column[ds] * cell_w)}" y="{row[feature] * cell_h}" '
            f'width="{_f(cell_w - 0.5)}" height="{cell_h - 1}" data-ds="{ds}" '
            f'data-feature="{escape(feature)}" data-psi="{psi:.4f}" data-level="{escape(level)}">'
            f"<title>{escape(feature)} on {ds}: PSI {psi:.3f} ({escape(level)})</title></rect>"
        )
    step = max(1, len(days) // 8)
    for i in range(0, len(days), step):
        parts.append(
            f'<text class="tick" x="{_f(label_width + i * cell_w)}" y="{height - 8}">{days[i]}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def champion_timeline(
    spans: Sequence[tuple[int, dt.date, dt.date | None]], last_day: dt.date, width: int = 900
) -> Markup:
    """A band per champion, from the first day it scored to the next champion's (or `last_day`)."""
    if not spans:
        return Markup('<p class="empty">No champion yet.</p>')
    first = min(since for _, since, _ in spans)
    total = max((last_day - first).days + 1, 1)
    x = lambda day: 10 + (width - 90) * (day - first).days / total  # noqa: E731  (room for a date label)
    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {width} 56" width="{width}" height="56">'
        "<title>Champions over time</title>"
    ]
    for i, (version, since, until) in enumerate(spans):
        end = until or last_day + dt.timedelta(days=1)
        served = f"v{version}: champion from {since}" + (f" to {until}" if until else "")
        parts.append(
            f'<g class="span" data-version="{version}" data-since="{since}">'
            f'<rect class="band b{i % 4}" x="{_f(x(since))}" y="6" width="{_f(max(x(end) - x(since), 2))}" '
            f'height="24"><title>{served}</title></rect>'
            f'<text x="{_f(x(since) + 4)}" y="23">v{version}</text>'
            f'<text class="tick" x="{_f(x(since))}" y="48">{since}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))

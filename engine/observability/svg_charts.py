"""Small charts as inline SVG text: lines over dates, vertical bars, horizontal bars.

No JavaScript and nothing fetched: a chart is plain markup that any browser draws, so a
report that embeds them is one self-contained file. Every chart is an
`<svg class="chart">` whose data marks (bars, lines) carry the class `mark`, and whose
`data-marks` attribute says how many data points it draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

WIDTH = 880
PALETTE = {"primary": "#2f6db5", "secondary": "#e07b24", "muted": "#9db7d9", "good": "#2e8b57", "bad": "#c0392b",
           "weekend": "#e07b24", "weekday": "#2f6db5", "grid": "#e3e6ea", "axis": "#5f6b7a"}
Formatter = Callable[[float], str]


def compact_number(value: float) -> str:
    """1234567 → 1.23M, 45600 → 45.6k, 12 → 12."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if magnitude < 1000 else f"{value:,.0f}"


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round axis values from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _svg(width: int, height: int, label: str, marks: int, body: list[str]) -> str:
    return (f'<svg class="chart" role="img" aria-label="{escape(label)}" data-marks="{marks}" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def _value_axis(ticks: list[float], y: Callable[[float], float], left: float, right: float,
                fmt: Formatter) -> list[str]:
    parts = []
    for tick in ticks:
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="{PALETTE["grid"]}"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">'
                     f'{escape(fmt(tick))}</text>')
    return parts


def line_chart(label: str, x_labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None], str, float]],
               fmt: Formatter = compact_number, height: int = 300, label_every: int | None = None) -> str:
    """Lines over a shared x axis: `series` is (name, values, colour, stroke width);
    a None value breaks its line. One mark per line, `data-marks` counts the points."""
    left, right, top, bottom = 64, WIDTH - 16, 34, height - 40
    n = len(x_labels)
    values = [v for _, vs, _, _ in series for v in vs if v is not None]
    ticks = nice_ticks(max(values, default=0))

    def x(i: int) -> float:
        return left + (right - left) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return bottom - (bottom - top) * v / ticks[-1]

    body = _value_axis(ticks, y, left, right, fmt)
    every = label_every or max(1, math.ceil(n / 8))
    for i in range(0, n, every):
        body.append(f'<text x="{x(i):.1f}" y="{bottom + 18}" text-anchor="middle" class="tick">'
                    f'{escape(x_labels[i])}</text>')
    points = 0
    legend_x = left
    for name, vs, colour, stroke in series:
        coordinates = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if v is not None]
        points += len(coordinates)
        if len(coordinates) == 1:  # a single day: a dot, so it stays visible
            cx, cy = coordinates[0].split(",")
            body.append(f'<circle class="mark" cx="{cx}" cy="{cy}" r="4" fill="{colour}"/>')
        elif coordinates:
            body.append(f'<polyline class="mark" fill="none" stroke="{colour}" stroke-width="{stroke}" '
                        f'stroke-linejoin="round" points="{" ".join(coordinates)}"/>')
        body.append(f'<rect x="{legend_x}" y="10" width="14" height="4" fill="{colour}"/>'
                    f'<text x="{legend_x + 20}" y="16" class="legend">{escape(name)}</text>')
        legend_x += 30 + 8 * len(name)
    return _svg(WIDTH, height, label, points, body)


def bar_chart(label: str, categories: Sequence[str], values: Sequence[float], colours: Sequence[str] | None = None,
              fmt: Formatter = compact_number, height: int = 280, label_every: int | None = None,
              show_values: bool = False) -> str:
    """Vertical bars, one per category."""
    left, right, top, bottom = 64, WIDTH - 16, 20, height - 40
    n = len(categories)
    ticks = nice_ticks(max(values, default=0))
    slot = (right - left) / max(n, 1)
    width = min(max(slot * 0.72, 1.0), 56.0)

    def y(v: float) -> float:
        return bottom - (bottom - top) * v / ticks[-1]

    body = _value_axis(ticks, y, left, right, fmt)
    every = label_every or max(1, math.ceil(n / 12))
    for i, (category, value) in enumerate(zip(categories, values)):
        cx = left + slot * (i + 0.5)
        colour = colours[i] if colours else PALETTE["primary"]
        bar_top = min(y(value), bottom - 2)  # a zero or tiny value still shows as a sliver
        body.append(f'<rect class="mark" x="{cx - width / 2:.1f}" y="{bar_top:.1f}" width="{width:.1f}" '
                    f'height="{bottom - bar_top:.1f}" fill="{colour}">'
                    f'<title>{escape(category)}: {escape(fmt(value))}</title></rect>')
        if i % every == 0:
            body.append(f'<text x="{cx:.1f}" y="{bottom + 18}" text-anchor="middle" class="tick">'
                        f'{escape(category)}</text>')
        if show_values:
            body.append(f'<text x="{cx:.1f}" y="{y(value) - 5:.1f}" text-anchor="middle" class="value">'
                        f'{escape(fmt(value))}</text>')
    return _svg(WIDTH, height, label, n, body)


def hbar_chart(label: str, labels: Sequence[str], values: Sequence[float], colour: str = PALETTE["primary"],
               fmt: Formatter = compact_number, label_width: int = 200) -> str:
    """Horizontal bars, one per labelled value, top to bottom, each with its value."""
    row, top = 26, 8
    height = top * 2 + row * len(labels)
    left, right = label_width, WIDTH - 90
    largest = max(values, default=0) or 1
    body = []
    for i, (text, value) in enumerate(zip(labels, values)):
        y = top + i * row
        length = max((right - left) * value / largest, 1.0)
        body.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" class="label">{escape(text)}</text>')
        body.append(f'<rect class="mark" x="{left}" y="{y + 4}" width="{length:.1f}" height="{row - 8}" '
                    f'fill="{colour}"><title>{escape(text)}: {escape(fmt(value))}</title></rect>')
        body.append(f'<text x="{left + length + 6:.1f}" y="{y + 17}" class="value">{escape(fmt(value))}</text>')
    return _svg(WIDTH, height, label, len(labels), body)

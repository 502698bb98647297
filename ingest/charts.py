"""Bar charts as geometry for server-rendered SVG (templates/workspace/_chart.html draws them).

Stacked bars per month: positive parts above the zero line, negative parts below, each part a
CSS class (its colour). Pure: numbers in, rectangles and axis ticks out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 84, 12, 12, 28


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    css: str  # class giving its colour
    values: Sequence[int]


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    text: str


@dataclass(frozen=True, slots=True)
class Trace:
    """A line over the bars (a forecast, committed MRR) or, with `low`, a band between two
    lines (an interval). Values per column; None leaves the column out."""

    name: str
    css: str
    values: Sequence[int | None]
    low: Sequence[int | None] | None = None


@dataclass(frozen=True, slots=True)
class Path:
    css: str
    points: str  # SVG "x,y x,y ..."
    band: bool
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    label: str
    width: int
    height: int
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    zero: float
    legend: list[Series]
    left: int = LEFT
    right: int = WIDTH - RIGHT
    paths: list[Path] = field(default_factory=list)
    traces: list[Trace] = field(default_factory=list)


def nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `ticks` intervals."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)


def stacked(
    label: str,
    columns: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[int], str],
    tick_fmt: Callable[[int], str],
    traces: Sequence[Trace] = (),
) -> Chart:
    """One stacked bar per column; `fmt` writes an amount in a tooltip, `tick_fmt` on the axis.
    `traces` are drawn over the bars, on the same scale."""
    highs = [sum(max(s.values[i], 0) for s in series) for i in range(len(columns))]
    lows = [sum(min(s.values[i], 0) for s in series) for i in range(len(columns))]
    drawn = [v for t in traces for v in (*t.values, *(t.low or ())) if v is not None]
    highs += [max(v, 0) for v in drawn]
    lows += [min(v, 0) for v in drawn]
    top: float = max([0, *highs])
    bottom: float = min([0, *lows])
    step = nice_step(top - bottom or 1)
    top = math.ceil(top / step) * step if top else 0.0
    bottom = math.floor(bottom / step) * step if bottom else 0.0
    if top == bottom:
        top = step
    plot_h = HEIGHT - TOP - BOTTOM
    plot_w = WIDTH - LEFT - RIGHT

    def y(value: float) -> float:
        return TOP + (top - value) / (top - bottom) * plot_h

    slot = plot_w / max(len(columns), 1)
    width = max(slot * 0.66, 1.0)
    bars: list[Bar] = []
    for i, column in enumerate(columns):
        x = LEFT + i * slot + (slot - width) / 2
        up: float = 0
        down: float = 0
        for s in series:
            v = s.values[i]
            if v == 0:
                continue
            start = up if v > 0 else down
            end = start + v
            if v > 0:
                up = end
            else:
                down = end
            y0, y1 = y(max(start, end)), y(min(start, end))
            bars.append(Bar(x, y0, width, max(y1 - y0, 0.5), s.css, f"{column} {s.name}: {fmt(v)}"))
    y_ticks = []
    value: float = bottom
    while value <= top + step / 2:
        y_ticks.append(Tick(y(value), tick_fmt(int(value))))
        value += step
    every = max(1, math.ceil(len(columns) / 12))
    x_ticks = [
        Tick(LEFT + i * slot + slot / 2, column)
        for i, column in enumerate(columns)
        if i % every == 0
    ]
    centre = [LEFT + i * slot + slot / 2 for i in range(len(columns))]
    paths = [_path(t, centre, y, fmt) for t in traces]
    return Chart(
        label,
        WIDTH,
        HEIGHT,
        bars,
        y_ticks,
        x_ticks,
        y(0),
        list(series),
        paths=[p for p in paths if p is not None],
        traces=list(traces),
    )


def _path(
    trace: Trace, centre: Sequence[float], y: Callable[[float], float], fmt: Callable[[int], str]
) -> Path | None:
    top = [(centre[i], y(v)) for i, v in enumerate(trace.values) if v is not None]
    if trace.low is None:
        points = top
    else:
        low = [(centre[i], y(v)) for i, v in enumerate(trace.low) if v is not None]
        points = top + low[::-1]
    if len(points) < 2:
        return None
    text = " ".join(f"{x:.1f},{y_:.1f}" for x, y_ in points)
    known = [v for v in trace.values if v is not None]
    title = f"{trace.name}: {fmt(known[0])} to {fmt(known[-1])}"
    return Path(trace.css, text, trace.low is not None, title)

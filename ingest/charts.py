"""Bar charts as geometry for server-rendered SVG (templates/workspace/_chart.html draws them).

Stacked bars per month: positive parts above the zero line, negative parts below, each part a
CSS class (its colour). Pure: numbers in, rectangles and axis ticks out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
) -> Chart:
    """One stacked bar per column; `fmt` writes an amount in a tooltip, `tick_fmt` on the axis."""
    highs = [sum(max(s.values[i], 0) for s in series) for i in range(len(columns))]
    lows = [sum(min(s.values[i], 0) for s in series) for i in range(len(columns))]
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
    return Chart(label, WIDTH, HEIGHT, bars, y_ticks, x_ticks, y(0), list(series))

"""Chart geometry for the web pages' inline SVG: computed here, drawn by the templates.

No chart library and no script: a report is readable (and printable) as the server sent it.
Every number is rounded to one decimal, so the SVG stays small and diffs stay readable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from coach.render import duration


def _r(value: float) -> float:
    return round(value, 1)


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str  # SVG text-anchor: start, middle or end


@dataclass(frozen=True)
class RadarChart:
    """A hexagonal radar of phase scores (0-4): rings, axes, the score shape and its dots."""

    width: int
    height: int
    cx: float
    cy: float
    rings: list[str]  # polygon points, one ring per level 1..4
    axes: list[tuple[float, float]]  # the outer end of each axis
    shape: str  # polygon points of the scores
    dots: list[tuple[float, float, int, str]]  # x, y, score, phase title
    labels: list[Label]
    ring_labels: list[Label]


def radar(
    scores: list[tuple[str, int]], *, width: int = 460, height: int = 340, max_score: int = 4
) -> RadarChart:
    """Geometry for `scores` (label, 0..max_score), one axis each, first axis pointing up.

    Wider than tall, so the labels beside the side axes fit inside the picture.
    """
    cx, cy = width / 2, height / 2
    radius = height / 2 - 48  # room above and below for the top and bottom labels
    n = len(scores)

    def point(index: int, value: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * index / n
        distance = radius * value / max_score
        return _r(cx + distance * math.cos(angle)), _r(cy + distance * math.sin(angle))

    def polygon(values: list[float]) -> str:
        return " ".join(f"{x},{y}" for x, y in (point(i, v) for i, v in enumerate(values)))

    labels = []
    for i, (title, _) in enumerate(scores):
        x, y = point(i, max_score + 0.5)
        anchor = "middle" if abs(x - cx) < 8 else ("start" if x > cx else "end")
        if anchor == "middle":
            y += -4 if y < cy else 14  # clear of the axis end, above or below
        else:
            y += 5
        labels.append(Label(x=x, y=_r(y), text=title, anchor=anchor))
    return RadarChart(
        width=width,
        height=height,
        cx=cx,
        cy=cy,
        rings=[polygon([level] * n) for level in range(1, max_score + 1)],
        axes=[point(i, max_score) for i in range(n)],
        shape=polygon([float(s) for _, s in scores]),
        dots=[(*point(i, score), score, title) for i, (title, score) in enumerate(scores)],
        labels=labels,
        ring_labels=[
            Label(x=_r(cx + 9), y=_r(point(0, level)[1] + 14), text=str(level), anchor="start")
            for level in range(1, max_score + 1)
        ],
    )


@dataclass(frozen=True)
class Meter:
    """One horizontal bar drawn in HTML (it reflows on a phone; SVG text would shrink)."""

    label: str
    percent: float  # the bar's length, 0..100
    value_text: str
    highlight: bool = False
    over: bool = False
    marker: float | None = None  # where a reference tick (a time budget) sits, 0..100


def score_meters(
    rows: list[tuple[str, float, str]], *, max_value: float, highlight: str | None = None
) -> list[Meter]:
    """(label, value, value text) rows on a 0..max_value scale; `highlight` names one row."""
    return [
        Meter(
            label=label,
            percent=_r(max(0.0, min(value, max_value)) / max_value * 100),
            value_text=text,
            highlight=label == highlight,
        )
        for label, value, text in rows
    ]


def time_meters(rows: list[tuple[str, float, float]]) -> list[Meter]:
    """Time used against budget per phase: (label, used s, budget s); over budget is marked."""
    longest = max([1.0, *(max(used, budget) for _, used, budget in rows)])
    return [
        Meter(
            label=label,
            percent=_r(used / longest * 100),
            value_text=f"{duration(used)} of {duration(budget)}",
            over=used > budget,
            marker=_r(budget / longest * 100),
        )
        for label, used, budget in rows
    ]


@dataclass(frozen=True)
class LinePoint:
    x: float
    y: float
    value: int
    title: str  # shown on hover and read by screen readers


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    path: str
    points: list[LinePoint]
    grid: list[Label]  # y gridlines with their value
    x_labels: list[Label]


def line(
    rows: list[tuple[datetime, int, str]], *, width: int = 460, height: int = 250
) -> LineChart:
    """Overall scores (0-100) in time order, evenly spaced so each interview gets its room."""
    left, right, top, bottom = 40, width - 24, 24, height - 34
    count = len(rows)

    def x_at(i: int) -> float:
        return _r(left + (right - left) * (0.5 if count == 1 else i / (count - 1)))

    def y_at(value: float) -> float:
        return _r(bottom - (bottom - top) * value / 100)

    points = [
        LinePoint(x=x_at(i), y=y_at(v), value=v, title=f"{when:%d %b}: {title}, {v}/100")
        for i, (when, v, title) in enumerate(rows)
    ]
    path = " ".join(f"{'M' if i == 0 else 'L'}{p.x},{p.y}" for i, p in enumerate(points))
    grid = [Label(x=left - 8, y=y_at(v), text=str(v), anchor="end") for v in (0, 25, 50, 75, 100)]
    step = max(1, math.ceil(count / 6))  # at most about six date labels
    x_labels = [
        Label(x=p.x, y=height - 12, text=f"{rows[i][0]:%d %b}", anchor="middle")
        for i, p in enumerate(points)
        if i % step == 0 or i == count - 1
    ]
    return LineChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        path=path,
        points=points,
        grid=grid,
        x_labels=x_labels,
    )

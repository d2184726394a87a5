"""A job's run history as an SVG chart, drawn on the server: duration and rows per run over time.

Plain SVG elements, no script and no library: the page works offline and the chart prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from jobs.models import ExecutionStatus
from jobs.progress import RunFigures

WIDTH = 760
PANEL_HEIGHT = 150
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 26, 30
GRID_LINES = 5

# The admin's own colour variables, so the chart follows its light and dark themes.
INK = "var(--body-quiet-color, #666)"
GRID = "var(--hairline-color, #e8e8e8)"
DURATION = "#417690"
READ = "#79aec8"
APPLIED = "#2e7d32"
FAILED = "#ba2121"


def history_svg(runs: Sequence[RunFigures]) -> SafeString:
    """Two panels over one time axis: seconds per run, then rows read and applied per run.

    `runs` may come in any order; they are drawn oldest to newest. Runs that never started
    are left out (they have no duration and read nothing).
    """
    started = sorted(
        (run for run in runs if run.execution.started_at is not None),
        key=lambda run: (run.execution.started_at, run.execution.pk),
    )
    height = 2 * PANEL_HEIGHT + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="run-history" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'font-family="sans-serif" font-size="11">',
        f"<title>{len(started)} runs: duration and rows per run</title>",
    ]
    if not started:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle" fill="{INK}">'
            "No run has started yet.</text></svg>"
        )
        return mark_safe("".join(parts))
    times = [_when(run) for run in started]
    xs = _x_positions(times)
    durations = [run.seconds or 0.0 for run in started]
    read = [run.rows_read for run in started]
    applied = [run.rows_applied + run.rows_deleted for run in started]
    parts += _panel(
        top=0,
        title="Duration (seconds)",
        xs=xs,
        series=[(durations, DURATION, "duration")],
        started=started,
        value_text=lambda value: f"{value:.1f} s",
    )
    rows_series: list[tuple[list[float], str, str]] = [
        ([float(value) for value in applied], APPLIED, "rows applied")
    ]
    if any(value is not None for value in read):
        rows_series.insert(0, ([float(value or 0) for value in read], READ, "rows read"))
    parts += _panel(
        top=PANEL_HEIGHT + 10,
        title="Rows per run",
        xs=xs,
        series=rows_series,
        started=started,
        value_text=lambda value: f"{value:,.0f}",
    )
    axis_y = 2 * PANEL_HEIGHT + 24
    first, last = times[0], times[-1]
    parts.append(
        f'<text x="{LEFT}" y="{axis_y}" fill="{INK}">{escape(_label(first))}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{axis_y}" text-anchor="end" fill="{INK}">'
        f"{escape(_label(last))}</text>"
    )
    legend = [(DURATION, "duration"), *((colour, name) for _, colour, name in rows_series)]
    if any(_failed(run) for run in started):
        legend.append((FAILED, "failed"))
    legend_x = WIDTH / 2 - 42 * len(legend)
    for offset, (colour, name) in enumerate(legend):
        x = legend_x + offset * 85
        parts.append(
            f'<circle cx="{x}" cy="{axis_y - 4}" r="4" fill="{colour}"/>'
            f'<text x="{x + 8}" y="{axis_y}" fill="{INK}">{name}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _failed(run: RunFigures) -> bool:
    return run.execution.status in (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


def _when(run: RunFigures) -> datetime:
    assert run.execution.started_at is not None
    return timezone.localtime(run.execution.started_at)


def _label(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _x_positions(times: list[datetime]) -> list[float]:
    """Time-proportional positions; evenly spread when every run started within one second."""
    left, right = LEFT + 8, WIDTH - RIGHT - 8
    span = (times[-1] - times[0]).total_seconds()
    if len(times) == 1:
        return [(left + right) / 2]
    if span < 1:
        step = (right - left) / (len(times) - 1)
        return [left + i * step for i in range(len(times))]
    return [left + (right - left) * (t - times[0]).total_seconds() / span for t in times]


def _nice_ceiling(value: float) -> float:
    """The smallest round ceiling at or above `value` (1, 1.5, 2, 2.5 … 8 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    # Steps whose fifths are round too: the grid has GRID_LINES = 5 intervals.
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _panel(
    *,
    top: float,
    title: str,
    xs: list[float],
    series: list[tuple[list[float], str, str]],
    started: list[RunFigures],
    value_text: Callable[[float], str],
) -> list[str]:
    plot_top, plot_bottom = top + TOP, top + PANEL_HEIGHT - 6
    ceiling = _nice_ceiling(max(max(values) for values, _, _ in series))

    def y(value: float) -> float:
        return plot_bottom - (plot_bottom - plot_top) * value / ceiling

    parts = [f'<text x="{LEFT}" y="{top + 14}" font-weight="bold" fill="{INK}">{title}</text>']
    for line in range(GRID_LINES + 1):
        value = ceiling * line / GRID_LINES
        gy = y(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="{GRID}"/>'
            f'<text x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" fill="{INK}">'
            f"{escape(value_text(value))}</text>"
        )
    for values, colour, name in series:
        points = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in zip(xs, values, strict=True))
        if len(values) > 1:
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
        for x, value, run in zip(xs, values, started, strict=True):
            failed = _failed(run)
            tip = (
                f"{_label(_when(run))} · {run.execution.get_status_display()} · "
                f"{name}: {value_text(value)}"
            )
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="3.5" '
                f'fill="{FAILED if failed else colour}"><title>{escape(tip)}</title></circle>'
            )
    return parts

"""Filters for the console's run pages: counts with separators, durations, times to the ms."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from jobs.models import Execution
from jobs.progress import RunFigures, figures

register = template.Library()


@register.filter
def thousands(value: int | float | None) -> str:
    """12345 → "12,345"; None → "—" (a figure the run does not have)."""
    if value is None:
        return "—"
    return f"{value:,.0f}"


@register.filter
def seconds(value: float | None) -> str:
    """A duration as a person reads it: "850 ms", "12.4 s", "3 min 05 s", "2 h 04 min"."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    whole = int(value)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


@register.filter
def ms(value: datetime | None) -> str:
    """A time in the gateway's time zone to the millisecond: log lines a few ms apart differ."""
    if value is None:
        return "—"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


@register.filter
def percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} %"


@register.filter
def run_figures(execution: Execution) -> RunFigures:
    """An execution's rows read, applied and deleted, and its duration (jobs/progress.py)."""
    return figures(execution)

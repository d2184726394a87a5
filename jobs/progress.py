"""How far a run has got and what it did, in figures a person reads: rows, estimate, percentage.

The console's run and job pages read these; they only look at the counters the runner saves
while a run works (`ExecutionContext.progress`), so they cost a query or two, not a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from jobs.models import Execution, ExecutionStatus, Job, JobKind

# Past this share of its estimate a running run shows 99 %, not 100 %: it has not finished.
RUNNING_PERCENT_CAP = 99.0


@dataclass(frozen=True)
class RunFigures:
    """One run's outcome as a row of a job's run list: rows read, applied, deleted, time."""

    execution: Execution
    rows_read: int | None  # a reader's rows read; a writer reads change logs, not rows
    rows_applied: int
    rows_deleted: int
    seconds: float | None  # None until it has started


@dataclass(frozen=True)
class RunProgress:
    """A run's progress: rows so far, against an estimate where one exists."""

    status: str
    finished: bool
    rows: int
    rows_label: str
    estimate: int | None
    estimate_basis: str
    percent: float | None
    seconds: float | None
    rows_per_second: float | None


def run_seconds(execution: Execution, now: datetime | None = None) -> float | None:
    """Elapsed time: start to finish, or start to now while it runs; None before it starts."""
    if execution.started_at is None:
        return None
    end = execution.finished_at or now or timezone.now()
    return max(0.0, (end - execution.started_at).total_seconds())


def figures(execution: Execution, now: datetime | None = None) -> RunFigures:
    """Rows read, applied and deleted, whichever listener ran.

    A direct job's reader run carries its writer's counts (records_direct_*), so the reader's
    row in a job's list says what reached the target.
    """
    if execution.listener_type == JobKind.READER:
        direct = execution.records_direct_written or execution.records_direct_deleted
        applied = execution.records_direct_written if direct else execution.record_count
        deleted = execution.records_direct_deleted if direct else execution.delete_count
        return RunFigures(
            execution, execution.records_available, applied, deleted, run_seconds(execution, now)
        )
    return RunFigures(
        execution,
        None,
        execution.record_count,
        execution.delete_count,
        run_seconds(execution, now),
    )


def recent_runs(job: Job, limit: int = 20) -> QuerySet[Execution]:
    """A job's newest runs, newest first (the job page's list and chart)."""
    return Execution.objects.filter(job=job).defer("result").order_by("-created_on", "-id")[:limit]


def progress(execution: Execution, now: datetime | None = None) -> RunProgress:
    """Rows so far, the estimate and the percentage for the run page's live panel."""
    seconds = run_seconds(execution, now)
    finished = execution.is_finished
    if execution.listener_type == JobKind.READER:
        rows, label = execution.records_available, "rows read"
    elif execution.listener_type == JobKind.WRITER:
        rows, label = execution.record_count + execution.delete_count, "changes applied"
    else:
        rows, label = execution.record_count, "rows processed"
    estimate, basis = _estimate(execution)
    percent: float | None = None
    if execution.status == ExecutionStatus.SUCCEEDED:
        percent = 100.0
    elif estimate:
        percent = min(100.0 * rows / estimate, RUNNING_PERCENT_CAP)
    rate = rows / seconds if seconds and rows else None
    return RunProgress(
        status=execution.status,
        finished=finished,
        rows=rows,
        rows_label=label,
        estimate=estimate,
        estimate_basis=basis,
        percent=percent,
        seconds=seconds,
        rows_per_second=rate,
    )


def _estimate(execution: Execution) -> tuple[int | None, str]:
    """What the run is expected to reach, and where that figure comes from.

    A writer of a direct job applies exactly what its reader logged (same execution guid).
    A reader is expected to read what the source itself estimates (its query planner's figure,
    saved when the read starts: PostgreSQL, MySQL/MariaDB), else about what the job's last
    successful run read; the engine never asks the source for a count, a second scan of it.
    """
    if execution.listener_type == JobKind.WRITER:
        reader = (
            Execution.objects.filter(guid=execution.guid, listener_type=JobKind.READER)
            .only("record_count", "delete_count")
            .first()
        )
        if reader is not None and (reader.record_count or reader.delete_count):
            return reader.record_count + reader.delete_count, "changes the reader logged"
        return None, ""
    if execution.listener_type != JobKind.READER:
        return None, ""
    if execution.rows_estimate is not None:
        return execution.rows_estimate, "the source's own estimate"
    if execution.job_id is None:
        return None, ""
    previous = (
        Execution.objects.filter(
            job_id=execution.job_id,
            listener_type=JobKind.READER,
            status=ExecutionStatus.SUCCEEDED,
            created_on__lt=execution.created_on,
            records_available__gt=0,
        )
        .order_by("-created_on", "-id")
        .only("records_available")
        .first()
    )
    if previous is None:
        return None, ""
    return previous.records_available, "rows the last successful run read"

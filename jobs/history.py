"""Read-side queries over executions and log entries: history, last status, output, logs.

Every function here runs a fixed number of queries, whatever the number of jobs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from jobs.models import Execution, ExecutionStatus, Job, JobKind, LogEntry, LogLevel

OUTPUT_LIMIT = 200
DEFAULT_HISTORY_LIMIT = 100


class HistoryError(Exception):
    """A history query the caller got wrong (bad limit, unknown listener type)."""


def latest_executions(jobs: QuerySet[Job]) -> dict[int, Execution]:
    """The newest execution of each job in `jobs`, by job id: one query, whatever the count."""
    newest = (
        Execution.objects.filter(job=OuterRef("pk")).order_by("-created_on", "-id").values("id")[:1]
    )
    ids = jobs.order_by().annotate(newest_id=Subquery(newest)).values("newest_id")
    # options and result are never shown here; skipping them skips decoding their JSON.
    found = Execution.objects.filter(id__in=ids).defer("options", "result")
    return {e.job_id: e for e in found if e.job_id is not None}


def history(
    job: Job, *, listener_type: str | None, limit: str | None, include_all: bool
) -> list[Execution]:
    """GET /job/history: newest first; a direct job's reader history shows its writer's too."""
    listener = (listener_type or JobKind.READER).lower()
    if listener not in (JobKind.READER, JobKind.WRITER):
        raise HistoryError("listenerType must be 'reader' or 'writer'.")
    try:
        count = DEFAULT_HISTORY_LIMIT if limit in (None, "") else int(limit)  # type: ignore[arg-type]
    except ValueError:
        raise HistoryError("limit must be a whole number.") from None
    if count < 1:
        raise HistoryError("limit must be 1 or more.")
    guids = _history_guids(job, listener)
    executions = Execution.objects.filter(job_guid__in=guids)
    if listener == JobKind.WRITER:
        executions = executions.filter(listener_type=JobKind.WRITER)
    if not include_all:
        # Default filter: runs that found or moved records, or that failed.
        executions = executions.filter(
            Q(record_count__gt=0)
            | Q(delete_count__gt=0)
            | Q(records_direct_written__gt=0)
            | Q(records_direct_deleted__gt=0)
            | Q(status=ExecutionStatus.FAILED)
            | ~Q(error_message="")
        )
    return list(executions.order_by("-created_on", "-id")[:count])


def _history_guids(job: Job, listener: str) -> list[str]:
    if job.kind == JobKind.READER and job.direct_writer_id is not None:
        writer_guid = job.direct_writer.guid  # type: ignore[union-attr]
        return [writer_guid] if listener == JobKind.WRITER else [job.guid, writer_guid]
    return [job.guid]


def output(guids: Iterable[str]) -> list[LogEntry]:
    """GET /job/output: the last 200 log entries of a job (and its direct writer), oldest first."""
    entries = LogEntry.objects.filter(job_guid__in=list(guids)).select_related("execution")
    return list(reversed(entries.order_by("-id")[:OUTPUT_LIMIT]))


def has_output(guid: str) -> bool:
    return LogEntry.objects.filter(job_guid=guid).exists()


def execution_log(exec_guid: str) -> list[LogEntry]:
    """GET /job/log: every entry of one execution guid (a direct job's reader and writer)."""
    return list(
        LogEntry.objects.filter(execution__guid=exec_guid)
        .select_related("execution")
        .order_by("execution__created_on", "execution_id", "sequence")
    )


def executions_of(exec_guid: str) -> list[Execution]:
    """The executions sharing an execution guid, reader first."""
    found = Execution.objects.filter(guid=exec_guid).order_by("created_on", "id")
    return sorted(found, key=lambda e: e.listener_type != JobKind.READER)


def dynamic_executions(job_guid: str) -> list[dict[str, Any]]:
    """GET /job/dynamic/executions: one row per execution guid, errors and warnings counted."""
    rows = (
        Execution.objects.filter(Q(job_guid=job_guid) | Q(guid__in=_direct_exec_guids(job_guid)))
        .values("guid")
        .annotate(
            last_run=Max(Coalesce("started_at", "created_on")),
            errors=Count("log_entries", filter=Q(log_entries__level=LogLevel.ERROR)),
            warnings=Count("log_entries", filter=Q(log_entries__level=LogLevel.WARNING)),
        )
        .order_by("-last_run")
    )
    return [dict(row) for row in rows]


def _direct_exec_guids(job_guid: str) -> QuerySet[Execution, Any]:
    # A direct job's writer runs under the reader's execution guid.
    return Execution.objects.filter(job_guid=job_guid).values("guid")


def use_counts(jobs: QuerySet[Job]) -> dict[str, int]:
    """How many of `jobs` reference each connection key: one aggregate query."""
    rows = (
        jobs.exclude(connection_key="").values("connection_key").annotate(n=Count("id")).order_by()
    )
    return {row["connection_key"]: row["n"] for row in rows}


def job_listing(jobs: QuerySet[Job]) -> tuple[list[tuple[Job, Job | None]], dict[int, Execution]]:
    """Jobs as DataZen lists them (a direct job once, by its reader) with their last runs.

    Two queries whatever the number of jobs: the jobs with their direct writers, and the
    newest execution of each of them.
    """
    listed = (
        jobs.select_related("direct_writer")
        .defer("content", "direct_writer__content")
        .filter(Q(kind=JobKind.READER) | Q(direct_reader__isnull=True))
        .order_by("job_key", "id")
    )
    rows = [(job, job.direct_writer) for job in listed]
    ids = jobs.values("pk")
    involved = Job.objects.filter(Q(pk__in=ids) | Q(direct_reader__in=ids))
    return rows, latest_executions(involved)

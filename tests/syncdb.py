"""Helpers for the sync engine tests: external databases, direct jobs, runs, row comparison."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

from jobs import runner, services
from jobs.models import Execution, Job, JobKind, new_guid


def execute(url: str, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                if params is not None:
                    connection.execute(text(statement), params)
                else:
                    connection.execute(text(statement))
    finally:
        engine.dispose()


def rows(url: str, table: str, order_by: str = "id") -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            quoted = engine.dialect.identifier_preparer.quote(table)
            result = connection.exec_driver_sql(f"SELECT * FROM {quoted} ORDER BY {order_by}")
            return [tuple(row) for row in result]
    finally:
        engine.dispose()


def direct_job(
    source_url: str,
    target_url: str,
    *,
    sql: str,
    target: str,
    keys: str = "id",
    timestamp_col: str = "",
    propagate_delete: bool = True,
    reader: dict[str, Any] | None = None,
    writer: dict[str, Any] | None = None,
    json_data: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> Job:
    """A stored direct job (reader + writer) as POST /job would leave it."""
    key = f"job_{new_guid()[:10]}"
    reader_def = {
        "JobKey": key,
        "SqlRead": sql,
        "Path": "C:\\tmp\\datasync_reader",
        "UpsertColumns": keys,
        "TimestampCol": timestamp_col,
        "ConnectionString": source_url,
        "PropagateDelete": propagate_delete,
        "SyncStrategy": "Full",
        "JsonData": {"KeepChangedLogFiles": False, **(json_data or {})},
        "PipelineDef": [],
        **(reader or {}),
    }
    writer_def = {
        "JobKey": f"__{key}",
        "Path": "C:\\tmp\\datasync_reader",
        "UpsertColumns": keys,
        "ConnectionString": target_url,
        "PropagateDelete": propagate_delete,
        "SourceJobKey": key,
        "TargetObject": target,
        "Options": {"BatchCount": 1000, **(options or {})},
        "PipelineDef": None,
        **(writer or {}),
    }
    reader_job = Job.objects.create(kind=JobKind.READER, job_key=key, definition=reader_def)
    writer_job = Job.objects.create(
        kind=JobKind.WRITER, job_key=f"__{key}", definition=writer_def, source=reader_job
    )
    reader_job.direct_writer = writer_job
    reader_job.save()
    return reader_job


def run(job: Job, **options: Any) -> Execution:
    """Run one execution of `job` in this thread, through the real runner."""
    created = services.new_execution(job, options=options)
    claimed = runner.claim(created.pk)
    assert claimed is not None
    runner.run_claimed(claimed)
    claimed.refresh_from_db()
    return claimed


def writer_execution(reader_execution: Execution) -> Execution:
    return Execution.objects.get(guid=reader_execution.guid, listener_type=JobKind.WRITER)


def messages(execution: Execution) -> list[str]:
    return [entry.message for entry in execution.log_entries.order_by("sequence")]

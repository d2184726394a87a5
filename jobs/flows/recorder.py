"""Writing real-time flow executions (Execution + LogEntry rows) off the run's path.

A real-time call should not wait for, or queue behind, SQLite's single write lock: one
recorder thread takes finished runs from a queue and writes them in batches, one transaction
per batch. A caller already inside a transaction (a test, a management command wrapping the
call) records inline instead, so its rows commit or roll back with its own. Records waiting
in the queue when the process dies are lost; `flush()` runs at exit (and when a Celery
worker process shuts down) and is there for callers that need the rows at once.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from jobs.flows.errors import FlowGone, error_kind
from jobs.flows.rows import RowInserter
from jobs.flows.values import count_rows
from jobs.models import Execution, ExecutionStatus, Job, JobKind, LogEntry, new_guid
from jobs.runner import worker_name

logger = logging.getLogger(__name__)

BATCH = 500
LINGER_SECONDS = 0.05


@dataclass
class Record:
    execution: Execution
    logs: list[tuple[int, str]]


_queue: queue.Queue[Record | threading.Event] = queue.Queue()
_thread: threading.Thread | None = None
_lock = threading.Lock()


def record_run(
    job: Job,
    user: str,
    *,
    guid: str | None,
    queued_at: Any,
    started_at: Any,
    logs: list[tuple[int, str]],
    outputs: dict[str, Any] | None,
    error: Exception | None,
) -> None:
    """Record a finished real-time run of `job`: its outputs, or its error with the kind a
    waiting web process rebuilds it from (jobs.flows.errors). `started_at` is None for a
    run refused or given up on before any engine took it."""
    result: dict[str, Any] | None = {"outputs": outputs} if outputs is not None else None
    if error is not None:
        result = {"error": {"kind": error_kind(error) or "", "message": str(error)}}
    execution = Execution(
        guid=guid or new_guid(),
        job_id=None if isinstance(error, FlowGone) else job.pk,
        job_guid=job.guid,
        job_key=job.job_key,
        listener_type=JobKind.FLOW,
        status=ExecutionStatus.FAILED if error else ExecutionStatus.SUCCEEDED,
        success=error is None,
        error_message=str(error) if error else "",
        record_count=count_rows(outputs),
        requested_by=user,
        worker=worker_name() if started_at else "",
        result=result,
        created_on=queued_at,
        started_at=started_at,
        finished_at=timezone.now(),
    )
    record(Record(execution, logs))


def record(item: Record) -> None:
    """Write now when inside a transaction; otherwise hand it to the recorder thread."""
    if connection.in_atomic_block:
        _write([item])
        return
    _ensure_thread()
    _queue.put(item)


def flush(timeout: float = 10.0) -> bool:
    """Wait until everything queued so far is written; False if that took too long."""
    if _thread is None:
        return True
    done = threading.Event()
    _queue.put(done)
    return done.wait(timeout)


def _ensure_thread() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="flow-recorder", daemon=True)
            _thread.start()


def _run() -> None:
    while True:
        first = _queue.get()
        # Let a batch gather: one transaction for many runs costs a fraction of one per run,
        # and waking less often leaves the request threads more of the interpreter.
        if not isinstance(first, threading.Event):
            time.sleep(LINGER_SECONDS)
        batch: list[Record] = []
        waiters: list[threading.Event] = []
        for item in _drain(first):
            if isinstance(item, threading.Event):
                waiters.append(item)
            else:
                batch.append(item)
        if batch:
            try:
                _reuse_connection()
                _write(batch)
            except Exception:  # one bad batch must not stop later records
                logger.exception("could not record %d flow executions", len(batch))
                connection.close()
        for waiter in waiters:
            waiter.set()


def _reuse_connection() -> None:
    """Keep this thread's connection between batches unless it broke, whatever CONN_MAX_AGE
    says: a reconnect (PRAGMAs, function registration) per batch cost the recorder more than
    the INSERTs did when CONN_MAX_AGE was 0.
    """
    if connection.connection is not None and (
        connection.errors_occurred or not connection.is_usable()
    ):
        connection.close()


def _drain(first: Record | threading.Event) -> list[Record | threading.Event]:
    items = [first]
    while len(items) < BATCH:
        try:
            items.append(_queue.get_nowait())
        except queue.Empty:
            break
    return items


def _write(batch: list[Record]) -> None:
    with transaction.atomic():
        # A flow deleted since its run answered keeps its history, detached (as SET_NULL does).
        wanted = {item.execution.job_id for item in batch if item.execution.job_id is not None}
        present = set(Job.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        for item in batch:
            if item.execution.job_id not in present:
                item.execution.job_id = None
        _EXECUTIONS.insert([item.execution for item in batch])
        _insert_logs(batch)


def _insert_logs(batch: list[Record]) -> None:
    """Each log line finds its execution by guid inside the INSERT, so no execution id comes
    back to Python: a RETURNING per execution was half of the recorder's SQLite calls."""
    names = ("execution", "job_guid", "sequence", "level", "message", "created_at")
    execution_id, guid = _columns(Execution, "id", "guid")
    table = connection.ops.quote_name(Execution._meta.db_table)
    sql = (
        f"INSERT INTO {connection.ops.quote_name(LogEntry._meta.db_table)} "
        f"({', '.join(_columns(LogEntry, *names))}) "
        f"SELECT {table}.{execution_id}, %s, %s, %s, %s, %s FROM {table} "
        f"WHERE {table}.{guid} = %s"
    )
    created_at = LogEntry._meta.get_field("created_at")
    rows: list[tuple[Any, ...]] = []
    for item in batch:
        run = item.execution
        when = created_at.get_db_prep_save(run.finished_at or run.created_on, connection)
        rows.extend(
            (run.job_guid, number, int(level), message, when, run.guid)
            for number, (level, message) in enumerate(item.logs, 1)
        )
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def _columns(model: type[Model], *names: str) -> list[str]:
    by_name = {field.name: str(field.column) for field in model._meta.concrete_fields}
    return [connection.ops.quote_name(by_name[name]) for name in names]


# A prepared INSERT: bulk_create compiled its SQL anew for every batch.
_EXECUTIONS = RowInserter(Execution)


atexit.register(flush, 5.0)

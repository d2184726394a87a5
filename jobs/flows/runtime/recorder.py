"""Writing real-time flow executions (Execution + LogEntry rows) off the run's path.

A real-time call should not wait for, or queue behind, the database's write lock: one
recorder thread takes finished runs from a queue and has them written in batches, one
transaction per batch. A caller already inside a transaction (a test, a management command
wrapping the call) records inline instead, so its rows commit or roll back with its own.

The writing itself happens in a writer process (`python -m jobs.flows.runtime.writer`, started at
the first record) when the database is one another process can open: the thread only pickles
each batch down a socket. Writing took a third of an embedded execution's time in the
gateway's interpreter, which every request thread shares, while a core stood idle; the writer
has an interpreter of its own. With an in-memory database (the tests'), with
GATEWAY_RECORDER_PROCESS=false, or when the writer cannot start or dies, the thread writes.

Records not yet written when the process dies are lost; `flush()` runs at exit (and when a
Celery worker process shuts down), and is there for callers that need the rows at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Model
from django.utils import timezone

from jobs.flows.errors import FlowGone, error_kind
from jobs.flows.language.values import count_rows
from jobs.flows.runtime.rows import RowInserter
from jobs.models import Execution, ExecutionStatus, Job, JobKind, LogEntry, new_guid
from jobs.runner import worker_name

logger = logging.getLogger(__name__)

BATCH = 500
LINGER_SECONDS = 0.05


@dataclass
class Record:
    """A finished run: its `Execution` field values (by attname) and its log lines."""

    execution: dict[str, Any]
    logs: list[tuple[int, str]]


_queue: queue.Queue[Record | threading.Event] = queue.Queue()
_thread: threading.Thread | None = None
_writer: _Writer | None = None
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
    # Plain values: the model instance is built where the row is written.
    execution = {
        "guid": guid or new_guid(),
        "job_id": None if isinstance(error, FlowGone) else job.pk,
        "job_guid": job.guid,
        "job_key": job.job_key,
        "listener_type": JobKind.FLOW.value,
        "status": (ExecutionStatus.FAILED if error else ExecutionStatus.SUCCEEDED).value,
        "success": error is None,
        "error_message": str(error) if error else "",
        "record_count": count_rows(outputs),
        "requested_by": user,
        "worker": worker_name() if started_at else "",
        "result": result,
        "created_on": queued_at,
        "started_at": started_at,
        "finished_at": timezone.now(),
    }
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
    global _writer
    _writer = _Writer.start() if _writer_wanted() else None
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
        if batch and _writer is not None:
            batch = _writer.write(batch)
            if not _writer.alive:
                _writer = None
        if batch:
            _write_here(batch)
        for waiter in waiters:
            waiter.set()


def _write_here(batch: list[Record]) -> None:
    try:
        _reuse_connection()
        _write(batch)
    except Exception:  # one bad batch must not stop later records
        logger.exception("could not record %d flow executions", len(batch))
        connection.close()


def _writer_wanted() -> bool:
    """A writer process can open the database this process writes to (not an in-memory one)."""
    if not settings.GATEWAY_RECORDER_PROCESS:
        return False
    name = str(connection.settings_dict.get("NAME") or "")
    return connection.vendor != "sqlite" or not (name == ":memory:" or "mode=memory" in name)


class _Writer:
    """The writer process, sent each batch down a socket by the recorder thread (its only
    user) and answering when the batch is written: the thread waits for that (holding no lock
    the request threads need), and meanwhile the next batch gathers."""

    def __init__(self, process: subprocess.Popen, pipe: Connection) -> None:
        self.process = process
        self.pipe = pipe
        self.alive = True

    @classmethod
    def start(cls) -> _Writer | None:
        ours, theirs = socket.socketpair()
        # The environment's module: under override_settings, SETTINGS_MODULE reads None.
        module = os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE
        env = dict(os.environ, DJANGO_SETTINGS_MODULE=module)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(settings.BASE_DIR), *filter(None, [env.get("PYTHONPATH")])]
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "jobs.flows.runtime.writer", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                # Its own session: Ctrl-C at a terminal is for the gateway, which flushes and
                # closes the socket; the writer leaves when it closes.
                start_new_session=True,
            )
        except Exception:  # no process to spare, no pass_fds (Windows)…: the thread writes
            logger.warning("no flow recorder process; the recorder thread writes", exc_info=True)
            ours.close()
            return None
        finally:
            theirs.close()
        pipe = Connection(ours.detach())
        # The databases as this process has them (a test database included).
        pipe.send_bytes(pickle.dumps(connections.databases, pickle.HIGHEST_PROTOCOL))
        return cls(process, pipe)

    def close(self) -> None:
        """Let it finish (it leaves when its socket closes)."""
        self.pipe.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def write(self, batch: list[Record]) -> list[Record]:
        """Have the batch written; what is left for the caller to write: nothing, or all of it
        when it cannot be sent or the writer is gone (then `alive` is False)."""
        try:
            data = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
        except Exception:  # a value pickle refuses: this batch is written by the caller
            logger.exception("could not send %d flow executions to the writer", len(batch))
            return batch
        try:
            self.pipe.send_bytes(data)
            if self.pipe.poll(WRITER_ANSWER_SECONDS) and self.pipe.recv_bytes() == _WRITTEN:
                return []
        except (OSError, EOFError):
            pass
        # Written or not, the batch is written again by the caller: `_write` skips runs in.
        logger.error("the flow recorder process stopped answering; the recorder thread writes")
        self.alive = False
        self.process.kill()
        self.process.wait()
        self.pipe.close()
        return batch


def write_forever(pipe: Connection) -> None:
    """The writer process's loop (jobs.flows.runtime.writer): each batch sent, written and answered,
    until the socket closes."""
    while True:
        try:
            batch = pickle.loads(pipe.recv_bytes())
        except (EOFError, OSError):
            return
        _write_here(batch)
        pipe.send_bytes(_WRITTEN)


_WRITTEN = b"written"
# A batch takes milliseconds; a writer silent this long is stuck.
WRITER_ANSWER_SECONDS = 60.0


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
        # A run already in (a batch written again after its writer died) is not doubled.
        guids = [item.execution["guid"] for item in batch]
        done = set(Execution.objects.filter(guid__in=guids).values_list("guid", flat=True))
        batch = [item for item in batch if item.execution["guid"] not in done]
        # A flow deleted since its run answered keeps its history, detached (as SET_NULL does).
        wanted = {item.execution["job_id"] for item in batch} - {None}
        present = set(Job.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        executions = [Execution(**item.execution) for item in batch]
        for execution in executions:
            if execution.job_id not in present:
                execution.job_id = None
        _EXECUTIONS.insert(executions)
        _insert_logs(executions, batch)


def _insert_logs(executions: list[Execution], batch: list[Record]) -> None:
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
    for run, item in zip(executions, batch, strict=True):
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


def _at_exit() -> None:
    flush(5.0)
    if _writer is not None:
        _writer.close()


atexit.register(_at_exit)

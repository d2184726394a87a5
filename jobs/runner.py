"""The runner that wraps every execution: claim → mark started → work → mark finished.

What the work is depends on the execution's listener type: each kind of work is registered
in code (`register_work`, done in jobs.apps) and gets an `ExecutionContext` to log, report
progress and notice a stop request. Hooks registered with `after_finish` (the job triggers)
run once an execution has ended. This module imports no engine code, so every engine module
can use it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs import leases
from jobs.models import (
    Execution,
    ExecutionStatus,
    Job,
    JobStatus,
    LogEntry,
    LogLevel,
)

logger = logging.getLogger(__name__)

Work = Callable[["ExecutionContext"], None]
FinishHook = Callable[[Execution], object]

_work: dict[str, Work] = {}
_after_finish: list[FinishHook] = []


def register_work(listener_type: str, work: Work) -> None:
    """What runs for executions of `listener_type` (reader, writer, flow)."""
    _work[listener_type] = work


def after_finish(hook: FinishHook) -> None:
    """Call `hook(execution)` once every execution has ended (registered once, at start)."""
    if hook not in _after_finish:
        _after_finish.append(hook)


def work_for(listener_type: str) -> Work:
    try:
        return _work[listener_type]
    except KeyError:
        raise ValueError(f"No work is registered for {listener_type!r} executions.") from None


# How often a running job re-reads its stop flag from the database.
CANCEL_POLL_SECONDS = 0.5


class Cancelled(Exception):
    """Raised by the work when a stop was requested; the run ends as cancelled."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ExecutionContext:
    """What a running job uses to log, report counters and check for a stop request."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self._sequence = LogEntry.objects.filter(execution=execution).count()
        self._cancel_checked_at = 0.0
        self._cancelled = False

    def log(self, message: str, level: int = LogLevel.INFO, *, has_rows: bool = False) -> None:
        """Log to the execution; `has_rows` messages (row values) stay out of process logs.

        Raises LeaseLost, writing nothing, once another claim has taken the run over: a
        worker resumed after a pause adds no line to its successor's log."""
        self._sequence += 1
        with transaction.atomic():
            # The claim's row, locked until the line is in: a takeover waits for it, and a
            # superseded claim finds no row.
            if not leases.same_claim(self.execution).update(takeovers=F("takeovers")):
                raise leases.lost(self.execution)
            LogEntry.objects.create(
                execution=self.execution,
                job_guid=self.execution.job_guid,
                sequence=self._sequence,
                level=level,
                message=message,
            )
        if not has_rows:
            python_level = _PY_LEVELS.get(level, logging.INFO)
            logger.log(python_level, "%s: %s", self.execution.job_key, message)

    def debug(self, message: str) -> None:
        self.log(message, LogLevel.DEBUG)

    def warning(self, message: str) -> None:
        self.log(message, LogLevel.WARNING)

    def error(self, message: str) -> None:
        self.log(message, LogLevel.ERROR)

    def progress(self, **fields: Any) -> None:
        """Save counters (record_count=…, elapsed_sql_time=…) so clients see them while it runs.

        Raises LeaseLost when this worker no longer runs the execution (jobs/leases.py)."""
        for name, value in fields.items():
            setattr(self.execution, name, value)
        if not leases.owned(self.execution).update(**fields):
            raise leases.lost(self.execution)

    def cancelled(self) -> bool:
        """Whether a stop was asked; raises LeaseLost when the run was taken over meanwhile
        (checked with the stop flag, so a resumed worker notices at its next batch)."""
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._cancel_checked_at >= CANCEL_POLL_SECONDS:
            self._cancel_checked_at = now
            self.check_lease()
        return self._cancelled

    def check_lease(self) -> None:
        """Raise LeaseLost unless this worker still runs the execution; note a stop request."""
        flags = leases.owned(self.execution).values_list("cancel_requested", flat=True).first()
        if flags is None:
            raise leases.lost(self.execution)
        self._cancelled = flags

    def raise_if_cancelled(self) -> None:
        if self.cancelled():
            raise Cancelled("Stopped on request.")


_PY_LEVELS: dict[int, int] = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}


def claim(execution_id: int) -> Execution | None:
    """Move a pending execution (or a dead worker's: jobs/leases.py) to running; None if
    another worker has it or it is done."""
    return leases.claim(execution_id, worker_name())


def run_claimed(
    execution: Execution, work: Callable[[ExecutionContext], None] | None = None
) -> Execution:
    """Run a claimed execution to its end and record how it ended."""
    context = ExecutionContext(execution)
    status = ExecutionStatus.SUCCEEDED
    error = ""
    try:
        try:
            (work or work_for(execution.listener_type))(context)
        except leases.LeaseLost:
            raise
        except Cancelled as exc:
            status, error = ExecutionStatus.CANCELLED, str(exc)
            context.warning(error)
        except Exception as exc:  # the job failed: record the source or target system's message
            status, error = ExecutionStatus.FAILED, error_message(exc)
            logger.exception("execution %s failed", execution.pk)
            context.error(error)
        finish(execution, status, error)
    except leases.LeaseLost as exc:
        # The run belongs to the worker that took it over: this one records nothing more.
        logger.warning("%s", exc)
    return execution


def finish(execution: Execution, status: str, error: str = "") -> None:
    """Record how the run ended; LeaseLost when another worker has taken it over."""
    now = timezone.now()
    success = status == ExecutionStatus.SUCCEEDED
    with transaction.atomic():
        if not leases.owned(execution).update(
            status=status, success=success, error_message=error, finished_at=now
        ):
            raise leases.lost(execution)
        execution.status = status
        execution.success = success
        execution.error_message = error
        execution.finished_at = now
        if execution.job_id is not None:
            Job.objects.filter(pk=execution.job_id).update(
                status=JobStatus.READY, last_run_time=execution.started_at or now
            )
    for hook in _after_finish:
        hook(execution)


def error_message(exc: BaseException) -> str:
    """What a failed run reports: the source or target system's own words where it has them."""
    # SQLAlchemy wraps the driver's error; its `orig` carries the source system's own words.
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return text.strip() or exc.__class__.__name__

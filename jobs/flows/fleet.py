"""Real-time flow runs on the fleet: queued by a web process, run by a worker's engine pool.

The web process creates the `Execution` and queues `run_flow_execution` on DATAFLUX_QUEUE; the
worker claims it, runs it, records it (status, result and log rows in one transaction) and
returns the outputs, which reach the waiting web thread through the Celery result backend
(Redis publishes them: no polling). Without a Redis result backend the web thread polls the
execution row instead.

This is the runner's claim → run → finish for one flow run, with the writes gathered: the
generic runner (`jobs.runner`, still `WORK["flow"]` for flow executions queued any other way)
spends a commit on every log line and counter, and at real-time rates those round trips, not
the flow, were the run's cost. Like embedded runs, these fire no job triggers and leave the
flow's `Job` row alone (a flow has no triggers, and every run updating one row serialises
concurrent runs of that flow on its lock).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from celery import shared_task
from celery.exceptions import Ignore
from celery.exceptions import TimeoutError as ResultTimeout
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.flows.engines import pool, preload_configured_flows
from jobs.flows.errors import (
    ERROR_KINDS,
    FlowGone,
    RunTimeout,
    error_kind,
    error_of_kind,
)
from jobs.flows.rows import RowGetter, RowInserter, RowUpdater
from jobs.flows.values import count_rows
from jobs.models import (
    Execution,
    ExecutionStatus,
    FlowEngine,
    Job,
    JobKind,
    LogEntry,
    LogLevel,
)
from jobs.runner import CANCEL_POLL_SECONDS, worker_name

logger = logging.getLogger(__name__)

FINISHED = (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)

POLL_START_SECONDS = 0.001
POLL_MAX_SECONDS = 0.02

_EXECUTION = RowGetter(
    Execution, where=("id",), fields=("id", "job", "job_guid", "job_key", "options", "requested_by")
)
_JOB = RowGetter(
    Job, where=("id",), fields=("id", "guid", "kind", "job_key", "definition", "updated_at")
)
# Every statement of a run is prepared once: compiling ORM queries cost the worker more than
# the flow did.
_NEW_EXECUTION = RowInserter(Execution)
_CLAIM = RowUpdater(
    Execution, ("status", "started_at", "worker"), where=("id", "status", "cancel_requested")
)
_GIVEN_UP = RowUpdater(
    Execution,
    ("status", "error_message", "finished_at"),
    where=("id", "status", "cancel_requested"),
)
_FINISH = RowUpdater(
    Execution,
    ("status", "success", "error_message", "finished_at", "result", "record_count"),
    where=("id",),
)
_LOG_ENTRIES = RowInserter(LogEntry)


# -- the web process -----------------------------------------------------------------------


def run_on_fleet(
    job: Job, inputs: dict[str, Any] | None, user: str, seconds: float | None
) -> dict[str, Any] | None:
    """Queue the run, wait for a worker to finish it; its outputs, or its error raised."""
    execution = Execution(
        job_id=job.pk,
        job_guid=job.guid,
        job_key=job.job_key,
        listener_type=JobKind.FLOW,
        options={"inputs": inputs or {}, "max_seconds": seconds},
        requested_by=user,
    )
    _NEW_EXECUTION.insert([execution], with_ids=True)
    # Wait as long as a queued request may wait for an engine plus the run's own limit.
    budget = settings.DATAFLUX_QUEUE_WAIT_SECONDS + (seconds or 3600) + 5
    task_id = uuid.uuid4().hex
    # Sending subscribes this thread to the result before the task can finish.
    transaction.on_commit(
        lambda: run_flow_execution.apply_async(
            (execution.pk,), queue=settings.DATAFLUX_QUEUE, task_id=task_id
        )
    )
    if _results_published():
        answer = _wait_for_result(task_id, budget)
    else:
        answer = _poll_execution(execution.pk, budget)
    if answer is None:
        # A worker that takes the run after this sees the request and does not start it.
        Execution.objects.filter(pk=execution.pk).update(cancel_requested=True)
        raise RunTimeout(f"No worker finished the run of {job.job_key!r} in {budget:g} s.")
    if not isinstance(answer, dict):
        # The task itself failed (its result is the exception), e.g. recording the run.
        raise RuntimeError(f"The worker failed running {job.job_key!r}: {answer!r}")
    if "error" not in answer:
        return answer.get("outputs")
    failure = answer["error"] or {}
    raise error_of_kind(failure.get("kind", ""), failure.get("message") or "The run failed.")


def _results_published() -> bool:
    """Whether the result backend pushes results (Redis) rather than needing to be polled."""
    return settings.CELERY_RESULT_BACKEND.startswith(("redis://", "rediss://", "unix://"))


def _wait_for_result(task_id: str, budget: float) -> Any:
    result = run_flow_execution.AsyncResult(task_id)
    try:
        return result.get(timeout=budget, propagate=False)
    except ResultTimeout:
        return None
    finally:
        # Taken: drop it now rather than keep every run's outputs in Redis until they expire.
        result.forget()


def _poll_execution(execution_id: int, budget: float) -> dict[str, Any] | None:
    give_up = time.monotonic() + budget
    pause = POLL_START_SECONDS
    while True:
        row = (
            Execution.objects.filter(pk=execution_id)
            .values("status", "result", "error_message")
            .first()
        )
        if row and row["status"] in FINISHED:
            result = row["result"] or {}
            if row["status"] == ExecutionStatus.SUCCEEDED:
                return {"outputs": result.get("outputs")}
            error = result.get("error") or {"message": row["error_message"]}
            return {"error": error}
        if time.monotonic() > give_up:
            return None
        time.sleep(pause)
        pause = min(pause * 1.25, POLL_MAX_SECONDS)


# -- the worker ----------------------------------------------------------------------------

_preloaded = False


@shared_task(
    name="jobs.flows.fleet.run_flow_execution",
    acks_late=True,
    reject_on_worker_lost=True,
)
def run_flow_execution(execution_id: int) -> dict[str, Any]:
    """Claim, run and record one flow execution; the outputs or the error, for the web."""
    global _preloaded
    if not _preloaded:
        _preloaded = True
        preload_configured_flows()
    started = timezone.now()
    claimed = _CLAIM.update(
        (ExecutionStatus.RUNNING, started, worker_name()),
        (execution_id, ExecutionStatus.PENDING, False),
    )
    if not claimed:
        # The web gave up waiting before a worker took it: nobody wants the answer any more.
        _GIVEN_UP.update(
            (ExecutionStatus.CANCELLED, "No worker took the run in time.", started),
            (execution_id, ExecutionStatus.PENDING, True),
        )
        # Or delivered twice: the other delivery answers (and stores no result over its one).
        raise Ignore()
    run = _FlowRun(execution_id)
    answer = run.run()
    run.record(answer)
    return answer


class _FlowRun:
    def __init__(self, execution_id: int) -> None:
        self.execution_id = execution_id
        self.logs: list[tuple[int, str]] = []
        self.status = ExecutionStatus.SUCCEEDED
        self.error = ""
        self.job_guid = ""
        self._checked = time.monotonic()
        self._stop = False

    def log(self, message: str, level: int = LogLevel.INFO) -> None:
        self.logs.append((level, message))

    def run(self) -> dict[str, Any]:
        try:
            execution = _EXECUTION.get(self.execution_id)
            if execution is None:
                raise FlowGone(f"Execution {self.execution_id} does not exist.")
            self.job_guid = execution.job_guid
            job = _JOB.get(execution.job_id) if execution.job_id else None
            if job is None:
                raise FlowGone(f"The job flow {execution.job_key!r} was deleted.")
            options = execution.options or {}
            return {"outputs": self._run(job, execution.requested_by, options)}
        except tuple(ERROR_KINDS) as exc:
            return self._failed(error_kind(exc) or "", str(exc))
        except Exception as exc:  # the run failed: record it, tell the web
            logger.exception("flow execution %s failed", self.execution_id)
            return self._failed("", str(exc).strip() or exc.__class__.__name__)

    def _run(self, job: Job, user: str, options: dict[str, Any]) -> dict[str, Any] | None:
        seconds = options.get("max_seconds")
        with pool().lease(job, user, seconds) as engine:
            self.log(f"Flow {job.job_key} on engine {engine.id} (run {engine.runs + 1})")

            def cancelled() -> bool:
                if engine.stop_requested or self._stop:
                    return True
                # An unload or a give-up asked from a web process shows in the rows: poll rarely.
                if time.monotonic() - self._checked < CANCEL_POLL_SECONDS:
                    return False
                self._checked = time.monotonic()
                engine.stop_requested = FlowEngine.objects.filter(
                    pk=engine.id, unload_requested=True
                ).exists()
                self._stop = Execution.objects.filter(
                    pk=self.execution_id, cancel_requested=True
                ).exists()
                return engine.stop_requested or self._stop

            return engine.run(options.get("inputs"), seconds, log=self.log, cancelled=cancelled)

    def _failed(self, kind: str, message: str) -> dict[str, Any]:
        self.status = ExecutionStatus.FAILED
        self.error = message
        self.log(message, LogLevel.ERROR)
        return {"error": {"kind": kind, "message": message}}

    def record(self, answer: dict[str, Any]) -> None:
        """The run's end and its log, in one transaction."""
        outputs = answer.get("outputs")
        values = (
            self.status,
            self.status == ExecutionStatus.SUCCEEDED,
            self.error,
            timezone.now(),
            answer if "error" in answer or outputs is not None else None,
            count_rows(outputs),
        )
        with transaction.atomic():
            _FINISH.update(values, (self.execution_id,))
            _LOG_ENTRIES.insert(
                [
                    LogEntry(
                        execution_id=self.execution_id,
                        job_guid=self.job_guid,
                        sequence=number,
                        level=level,
                        message=message,
                    )
                    for number, (level, message) in enumerate(self.logs, 1)
                ]
            )

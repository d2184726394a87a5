"""Executing a flow for a request: in this process (embedded) or on a worker (the fleet).

Either way the run is an `Execution` with `LogEntry` rows, written when it has answered by the
recorder thread of the process that ran it (jobs.flows.runtime.local), so a real-time call writes
nothing on its own path; fleet runs are queued by jobs.flows.runtime.fleet. A flow
execution queued any other way goes through the runner like any other job: `run_flow` below,
registered for "flow" executions in jobs/apps.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from jobs.flows.errors import ERROR_KINDS, FlowGone, RunTimeout, error_kind
from jobs.flows.language.values import count_rows
from jobs.flows.runtime.engines import is_embedded, pool, preload_once
from jobs.flows.runtime.fleet import run_on_fleet
from jobs.flows.runtime.local import run_and_record
from jobs.models import Job, LogLevel
from jobs.runner import Cancelled, ExecutionContext


@dataclass
class FlowResult:
    outputs: dict[str, Any] | None


def max_seconds(requested: float | None) -> float | None:
    """The run's time limit: the request's, capped by DATAFLUX_MAX_RUN_SECONDS (0 = none)."""
    ceiling = settings.DATAFLUX_MAX_RUN_SECONDS or None
    if requested is None or requested <= 0:
        return ceiling
    return min(requested, ceiling) if ceiling else requested


def execute(
    job: Job, inputs: dict[str, Any] | None, *, user: str, limit: float | None = None
) -> FlowResult:
    """Run the flow over `inputs`; raises the errors in jobs.flows.errors for the API to answer."""
    seconds = max_seconds(limit)
    if not is_embedded():
        return FlowResult(run_on_fleet(job, inputs, user, seconds))
    outputs, error = run_and_record(job, inputs, user, seconds)
    if error is not None:
        raise error
    return FlowResult(outputs)


def run_flow(context: ExecutionContext) -> None:
    """The runner's work for a flow execution queued like any other job (the console's "Start
    now", a job trigger): `options` may carry `inputs` and `max_seconds`.

    The run goes through `Engine.run`, as an API request's does, so an unload, the time limit
    and a bad input end it with the message a DataFlux client would get; a stop asked through
    the runner ends it as cancelled.
    """
    execution = context.execution
    preload_once()
    job = execution.job
    options = execution.options or {}
    seconds = max_seconds(options.get("max_seconds"))
    try:
        if job is None:
            raise FlowGone(f"The job flow {execution.job_key!r} was deleted.")
        with pool().lease(job, execution.requested_by, seconds) as engine:
            context.log(engine.describe_run(), LogLevel.INFO)
            outputs = engine.run(
                options.get("inputs"),
                seconds,
                log=context.log,
                # An unload asked from a web process reaches the engine through the mirror.
                cancelled=lambda: engine.stop_requested or context.cancelled(),
            )
    except RunTimeout as exc:
        if context.cancelled():
            raise Cancelled("Stopped on request while the flow ran.") from None
        _record_error(context, exc)
        raise
    except tuple(ERROR_KINDS) as exc:
        _record_error(context, exc)
        raise
    context.progress(
        result={"outputs": outputs} if outputs is not None else None,
        record_count=count_rows(outputs),
    )


def _record_error(context: ExecutionContext, exc: Exception) -> None:
    """The error's kind and message in the execution's result, as a fleet run records it."""
    context.progress(result={"error": {"kind": error_kind(exc), "message": str(exc)}})

"""Executing a flow for a request: in this process (embedded) or on a worker (the fleet).

Either way the run is an `Execution` with `LogEntry` rows, written when it has answered by the
recorder thread of the process that ran it (jobs.flows.runtime.local), so a real-time call writes
nothing on its own path; fleet runs are queued by jobs.flows.runtime.fleet. A flow
execution queued any other way goes through the runner like any other job (`WORK["flow"]`
is `run_flow` below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from jobs.flows.errors import ERROR_KINDS, FlowGone, error_kind
from jobs.flows.language.values import count_rows
from jobs.flows.runtime.engines import is_embedded, pool, preload_once
from jobs.flows.runtime.fleet import run_on_fleet
from jobs.flows.runtime.local import run_and_record
from jobs.models import Job, LogLevel
from jobs.runner import ExecutionContext


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
    """The runner's work for a flow execution on a worker: options carry the inputs."""
    execution = context.execution
    preload_once()
    job = execution.job
    try:
        if job is None:
            raise FlowGone(f"The job flow {execution.job_key!r} was deleted.")
        options = execution.options or {}
        user = execution.requested_by
        with pool().lease(job, user, options.get("max_seconds")) as engine:
            context.log(
                f"Flow {job.job_key} on engine {engine.id} (run {engine.runs + 1})", LogLevel.INFO
            )

            def cancelled() -> bool:
                # An unload asked from a web process reaches the engine through the mirror.
                return engine.stop_requested or context.cancelled()

            outputs = engine.compiled.run(
                options.get("inputs"),
                deadline=engine.deadline,
                log=context.log,
                cancelled=cancelled,
            )
        context.progress(
            result={"outputs": outputs} if outputs is not None else None,
            record_count=count_rows(outputs),
        )
    except tuple(ERROR_KINDS) as exc:
        context.progress(result={"error": {"kind": error_kind(exc), "message": str(exc)}})
        raise

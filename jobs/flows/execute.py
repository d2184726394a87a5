"""Executing a flow for a request: in this process (embedded) or on a worker (the fleet).

Either way the run is an `Execution` with `LogEntry` rows. Embedded runs are recorded when
they end, by the recorder thread (jobs.flows.recorder), so a real-time call writes nothing on
its own path; real-time fleet runs are queued and recorded by jobs.flows.fleet. A flow
execution queued any other way goes through the runner like any other job (`WORK["flow"]`
is `run_flow` below).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from jobs.flows import recorder
from jobs.flows.engines import is_embedded, pool
from jobs.flows.errors import (
    ERROR_KINDS,
    EngineBusy,
    EngineStopped,
    FlowError,
    FlowGone,
    InputError,
    RunTimeout,
    error_kind,
)
from jobs.flows.fleet import run_on_fleet
from jobs.flows.values import count_rows
from jobs.models import (
    Execution,
    ExecutionStatus,
    FlowEngine,
    Job,
    JobKind,
    LogLevel,
)
from jobs.runner import CANCEL_POLL_SECONDS, ExecutionContext, worker_name


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
    if is_embedded():
        return _execute_here(job, inputs, user, seconds)
    return _execute_on_fleet(job, inputs, user, seconds)


def _execute_here(
    job: Job, inputs: dict[str, Any] | None, user: str, seconds: float | None
) -> FlowResult:
    started = timezone.now()
    logs: list[tuple[int, str]] = []
    outputs: dict[str, Any] | None = None
    error: Exception | None = None
    try:
        with pool().lease(job, user, seconds) as engine:
            first = engine.runs == 0
            logs.append(
                (
                    LogLevel.INFO,
                    f"Flow {job.job_key} loaded into engine {engine.id} "
                    f"(compiled in {engine.compiled.compile_seconds * 1000:.1f} ms)"
                    if first
                    else f"Flow {job.job_key} runs on engine {engine.id} (run {engine.runs + 1})",
                )
            )
            outputs = engine.run(
                inputs,
                seconds,
                log=lambda message: logs.append((LogLevel.INFO, message)),
                cancelled=lambda: engine.stop_requested,
            )
    except (FlowError, InputError, RunTimeout, EngineBusy, EngineStopped, FlowGone) as exc:
        error = exc
        logs.append((LogLevel.ERROR, str(error)))
    _record(job, user, started, logs, outputs, error)
    if error is not None:
        raise error
    return FlowResult(outputs)


def _record(
    job: Job,
    user: str,
    started: Any,
    logs: list[tuple[int, str]],
    outputs: dict[str, Any] | None,
    error: Exception | None,
) -> None:
    finished = timezone.now()
    execution = Execution(
        job_id=None if isinstance(error, FlowGone) else job.pk,
        job_guid=job.guid,
        job_key=job.job_key,
        listener_type=JobKind.FLOW,
        status=ExecutionStatus.FAILED if error else ExecutionStatus.SUCCEEDED,
        success=error is None,
        error_message=str(error) if error else "",
        record_count=count_rows(outputs),
        requested_by=user,
        worker=worker_name(),
        result={"outputs": outputs} if outputs is not None else None,
        created_on=started,
        started_at=started,
        finished_at=finished,
    )
    recorder.record(recorder.Record(execution, logs))


# -- the fleet ----------------------------------------------------------------------------


def _execute_on_fleet(
    job: Job, inputs: dict[str, Any] | None, user: str, seconds: float | None
) -> FlowResult:
    return FlowResult(run_on_fleet(job, inputs, user, seconds))


_preloaded = False


def run_flow(context: ExecutionContext) -> None:
    """The runner's work for a flow execution on a worker: options carry the inputs."""
    global _preloaded
    execution = context.execution
    if not _preloaded:
        _preloaded = True
        from jobs.flows.engines import preload_configured_flows

        preload_configured_flows()
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

            checked = [time.monotonic()]

            def cancelled() -> bool:
                if engine.stop_requested or context.cancelled():
                    return True
                # An unload asked from a web process shows in the engine's row; poll it rarely.
                if time.monotonic() - checked[0] < CANCEL_POLL_SECONDS:
                    return False
                checked[0] = time.monotonic()
                engine.stop_requested = FlowEngine.objects.filter(
                    pk=engine.id, unload_requested=True
                ).exists()
                return engine.stop_requested

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

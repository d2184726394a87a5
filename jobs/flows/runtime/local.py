"""One flow run on this process's engine pool, recorded: what an embedded request thread and a
fleet worker both do with a real-time execution.

The run answers first and is recorded after, by the recorder thread
(jobs.flows.runtime.recorder), as an `Execution` with its `LogEntry` rows; nothing is written
on the run's own path.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from jobs.flows.errors import ERROR_KINDS
from jobs.flows.runtime import recorder
from jobs.flows.runtime.engines import pool
from jobs.models import Job, LogLevel


def run_and_record(
    job: Job,
    inputs: dict[str, Any] | None,
    user: str,
    seconds: float | None,
    *,
    guid: str | None = None,
    queued_at: Any = None,
) -> tuple[dict[str, Any] | None, Exception | None]:
    """Run `job`'s flow over `inputs` for `user`; its outputs, or the API error it met.

    An unload stops the run (`Engine.stop_requested`: set here, or on the fleet by the engine
    mirror when a web process asks for it, jobs.flows.runtime.mirror).
    """
    started = timezone.now()
    logs: list[tuple[int, str]] = []
    outputs: dict[str, Any] | None = None
    error: Exception | None = None
    try:
        with pool().lease(job, user, seconds) as engine:
            logs.append((LogLevel.INFO, engine.describe_run()))
            outputs = engine.run(
                inputs,
                seconds,
                log=lambda message: logs.append((LogLevel.INFO, message)),
                cancelled=lambda: engine.stop_requested,
            )
    except tuple(ERROR_KINDS) as exc:
        error = exc
        logs.append((LogLevel.ERROR, str(exc)))
    recorder.record_run(
        job,
        user,
        guid=guid,
        queued_at=queued_at or started,
        started_at=started,
        logs=logs,
        outputs=outputs,
        error=error,
    )
    return outputs, error

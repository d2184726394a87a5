"""One flow run on this process's engine pool, recorded: what an embedded request thread and a
fleet worker both do with a real-time execution.

The run answers first and is recorded after, by the recorder thread (jobs.flows.recorder), as
an `Execution` with its `LogEntry` rows; nothing is written on the run's own path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from jobs.flows import recorder
from jobs.flows.engines import Engine, pool
from jobs.flows.errors import ERROR_KINDS
from jobs.models import Job, LogLevel
from jobs.runner import CANCEL_POLL_SECONDS


def run_and_record(
    job: Job,
    inputs: dict[str, Any] | None,
    user: str,
    seconds: float | None,
    *,
    guid: str | None = None,
    queued_at: Any = None,
    stop_check: Callable[[Engine], bool] | None = None,
) -> tuple[dict[str, Any] | None, Exception | None]:
    """Run `job`'s flow over `inputs` for `user`; its outputs, or the API error it met.

    `stop_check`, asked every CANCEL_POLL_SECONDS during the run, says whether the engine was
    asked to stop from elsewhere (a fleet's web process flags its row); a local unload needs
    none.
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
                cancelled=_stop_checker(engine, stop_check),
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


def _stop_checker(
    engine: Engine, stop_check: Callable[[Engine], bool] | None
) -> Callable[[], bool]:
    if stop_check is None:
        return lambda: engine.stop_requested
    checked = time.monotonic()

    def cancelled() -> bool:
        nonlocal checked
        if engine.stop_requested:
            return True
        if time.monotonic() - checked >= CANCEL_POLL_SECONDS:
            checked = time.monotonic()
            engine.stop_requested = stop_check(engine)
        return engine.stop_requested

    return cancelled

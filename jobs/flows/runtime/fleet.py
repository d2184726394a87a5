"""Real-time flow runs on the fleet: queued by a web process, run by a worker's engine pool.

The web thread sends everything the run needs in the task's message (the flow's id, guid,
name and version as its own lookup found them, the inputs, the user, the time limit) on
DATAFLUX_QUEUE, then waits on a Redis list named after the run. The worker runs it as an
embedded request thread would (jobs.flows.runtime.local), pushes the outputs or the error onto that
list, and its recorder thread writes the `Execution` and its log rows afterwards, batched.
So the run's path writes nothing to the database (engine rows are mirrored by a thread of the
worker, jobs.flows.runtime.mirror), and the answer is one Redis round trip each way; Celery's result
backend (subscribe, store, publish, fetch, forget: most of both processes' CPU per run) is not
used.
Without a Redis result backend to carry the answer, the web thread polls for the run's
`Execution` row instead, which the recorder writes a moment after the run.

A worker that takes a run after DATAFLUX_QUEUE_WAIT_SECONDS answers it "busy" without running
it; a web thread that heard nothing when every worker should have answered (that wait twice,
the run's limit, and 5 s more) records the run as failed and answers 504. Like embedded runs,
these fire no job triggers and leave the flow's `Job` row alone. A flow execution queued any
other way goes through the generic runner (jobs.flows.execute.run_flow).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import time
from typing import Any

import redis
from celery import shared_task
from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings

from jobs.flows.errors import EngineBusy, RunTimeout, error_kind, error_of_kind
from jobs.flows.runtime import recorder
from jobs.flows.runtime.definitions import flow_as_found
from jobs.flows.runtime.engines import is_embedded, pool, preload_once, version_of
from jobs.flows.runtime.local import run_and_record
from jobs.models import Execution, ExecutionStatus, Job, LogLevel, new_guid

logger = logging.getLogger(__name__)

FINISHED = (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
POLL_START_SECONDS = 0.001
POLL_MAX_SECONDS = 0.05
REPLY_PREFIX = "gateway:flow-reply:"
# How long past the latest a worker could answer the web still waits.
GRACE_SECONDS = 5.0
# The longest single blocking pop while waiting for an answer (well under socket_timeout).
REPLY_SLICE = 0.5


# -- the web process -----------------------------------------------------------------------


def run_on_fleet(
    job: Job, inputs: dict[str, Any] | None, user: str, seconds: float | None
) -> dict[str, Any] | None:
    """Queue the run, wait for a worker to answer it; its outputs, or its error raised."""
    guid = new_guid()
    queued = time.time()
    wait = settings.DATAFLUX_QUEUE_WAIT_SECONDS
    # A worker takes it within `wait` or refuses it, may wait as long for an engine, then runs
    # it within its limit: past that, no worker is going to answer.
    budget = 2 * wait + (seconds or 3600) + GRACE_SECONDS
    replies = _replies()
    request = {
        "guid": guid,
        "flow": [job.pk, job.guid, job.job_key, version_of(job)],
        "inputs": inputs or {},
        "user": user,
        "max_seconds": seconds,
        "queued": queued,
        "take_by": queued + wait,
        "reply": replies is not None,
    }
    run_flow_request.apply_async(  # type: ignore[call-arg]  # argsrepr: Celery has it, its stubs not
        (request,),
        queue=settings.DATAFLUX_QUEUE,
        # Not the inputs: Celery would render them into the message's headers (for logs and
        # monitors) at a tenth of the sending's cost, and they are the client's data.
        argsrepr=f"(flow run {guid} of {job.job_key!r} for {user!r})",
        kwargsrepr="{}",
    )
    if replies is not None:
        answer = _wait_for_reply(replies, guid, budget)
    else:
        answer = _poll_execution(guid, budget)
    if answer is None:
        error = RunTimeout(f"No worker answered the run of {job.job_key!r} in {budget:g} s.")
        _record_unrun(job, user, guid, queued, error)
        raise error
    if "error" not in answer:
        return answer.get("outputs")
    failure = answer["error"] or {}
    raise error_of_kind(failure.get("kind", ""), failure.get("message") or "The run failed.")


def _replies() -> redis.Redis | None:
    """The Redis that carries answers back (the result backend's), or None without one."""
    url = settings.CELERY_RESULT_BACKEND
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return _client(url)


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _wait_for_reply(replies: redis.Redis, guid: str, budget: float) -> dict[str, Any] | None:
    give_up = time.monotonic() + budget
    while (remaining := give_up - time.monotonic()) > 0:
        try:
            # In slices: one blocking pop longer than the client's socket_timeout (5 s by
            # default since redis-py 8) dies with TimeoutError while the run goes on.
            popped = replies.blpop([REPLY_PREFIX + guid], timeout=min(remaining, REPLY_SLICE))
        except (redis.ConnectionError, redis.TimeoutError):
            # Redis is gone, not the run: its worker still records it, so wait for the record
            # and answer what it says (the client and the history then agree).
            logger.warning("lost Redis while waiting for flow run %s; polling its record", guid)
            return _poll_execution(guid, max(0.0, give_up - time.monotonic()))
        if popped is not None:
            return json.loads(popped[1])
    return None


def _poll_execution(guid: str, budget: float) -> dict[str, Any] | None:
    give_up = time.monotonic() + budget
    pause = POLL_START_SECONDS
    while True:
        row = (
            Execution.objects.filter(guid=guid, status__in=FINISHED)
            .values("status", "result", "error_message")
            .first()
        )
        if row is not None:
            result = row["result"] or {}
            if row["status"] == ExecutionStatus.SUCCEEDED:
                return {"outputs": result.get("outputs")}
            return {"error": result.get("error") or {"message": row["error_message"]}}
        if time.monotonic() > give_up:
            return None
        time.sleep(pause)
        pause = min(pause * 1.25, POLL_MAX_SECONDS)


def _record_unrun(job: Job, user: str, guid: str, queued: float, error: Exception) -> None:
    recorder.record_run(
        job,
        user,
        guid=guid,
        queued_at=_moment(queued),
        started_at=None,
        logs=[(LogLevel.ERROR, str(error))],
        outputs=None,
        error=error,
    )


def _moment(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)


# -- the worker ----------------------------------------------------------------------------


@shared_task(
    # The name on the wire stays the one it had before the module moved to runtime/, so a
    # message queued by a web process of the previous release still finds its task.
    name="jobs.flows.fleet.run_flow_request",
    ignore_result=True,
    # Its request was answered (with an error) long before a redelivery could run it.
    acks_late=False,
)
def run_flow_request(request: dict[str, Any]) -> None:
    """Run one real-time flow request, answer it on its reply list, then record it."""
    preload_once()
    job = flow_as_found(*request["flow"])
    outputs: dict[str, Any] | None = None
    error: Exception | None
    if time.time() > request["take_by"]:
        error = EngineBusy(
            f"No worker took the run of {job.job_key!r} within "
            f"{settings.DATAFLUX_QUEUE_WAIT_SECONDS:g} seconds; try again later."
        )
        _record_unrun(job, request["user"], request["guid"], request["queued"], error)
    else:
        outputs, error = run_and_record(
            job,
            request["inputs"],
            request["user"],
            request["max_seconds"],
            guid=request["guid"],
            queued_at=_moment(request["queued"]),
        )
    if not request["reply"]:
        return
    answer: dict[str, Any] = {"outputs": outputs}
    if error is not None:
        answer = {"error": {"kind": error_kind(error) or "", "message": str(error)}}
    replies = _replies()
    if replies is None:
        logger.error("flow run %s wants a reply but no Redis result backend is set", job.job_key)
        return
    key = REPLY_PREFIX + request["guid"]
    with replies.pipeline(transaction=False) as pipe:
        pipe.rpush(key, json.dumps(answer))
        # Nobody waiting any more (the web gave up): the answer goes soon all the same.
        pipe.expire(key, 60)
        pipe.execute()


@worker_shutdown.connect
@worker_process_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    """Before a fleet worker process goes: write the runs still waiting for the recorder, and
    unload its engines (their rows are deleted, so no web process lists them any more)."""
    if is_embedded():
        return  # the gateway's own exit does both
    recorder.flush(5.0)
    pool().clear()

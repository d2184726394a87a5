"""Hand an execution to the workers: publish its Celery task, or close it when the broker
cannot be reached, so no run waits `pending` for a message that was never sent."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from jobs.models import Execution, ExecutionStatus, Job, JobStatus
from jobs.tasks import run_execution

logger = logging.getLogger(__name__)

# Past kombu's own reconnection tries (about 1 s here), the start is refused: the client can
# try again, and the job is not left marked running with nothing queued.
PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.25, "interval_max": 0.5}


class QueueUnavailable(Exception):
    """The broker did not take the run's message; the execution was closed as failed."""


def publish(execution: Execution) -> None:
    try:
        run_execution.apply_async(
            (execution.pk,),
            # Flower, Celery events and the worker's log name the job, not only the function.
            shadow=f"job {execution.job_key}",
            retry=True,
            retry_policy=PUBLISH_RETRY,
        )
    except Exception as exc:  # kombu's OperationalError, a socket error, a timeout
        message = f"Could not queue the run: the broker is unreachable ({exc})."
        logger.error("execution %s of %s: %s", execution.pk, execution.job_key, message)
        with transaction.atomic():
            Execution.objects.filter(pk=execution.pk, status=ExecutionStatus.PENDING).update(
                status=ExecutionStatus.FAILED,
                success=False,
                error_message=message,
                finished_at=timezone.now(),
            )
            if execution.job_id is not None:
                Job.objects.filter(pk=execution.job_id, status=JobStatus.RUNNING).update(
                    status=JobStatus.READY
                )
        raise QueueUnavailable(
            f"Cannot start '{execution.job_key}' now: the task queue is unreachable; "
            "try again shortly."
        ) from exc

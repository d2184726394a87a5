"""Celery tasks. They take ids, not objects, and are safe to deliver twice."""

import logging

from celery import shared_task

from jobs import runner
from jobs.models import ExecutionStatus

logger = logging.getLogger(__name__)


class JobFailed(Exception):
    """The run failed: raised so Flower and Celery events show a failed task, not a success."""


# throws: an expected outcome, logged by the worker in one line rather than with a traceback.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True, throws=(JobFailed,))
def run_execution(execution_id: int) -> None:
    """Run one pending execution; a re-delivered task finds it claimed and does nothing."""
    execution = runner.claim(execution_id)
    if execution is None:
        # A delivery again of a run a live worker holds (the broker's visibility timeout
        # passed while it runs) or that has finished: nothing to do.
        logger.info("execution %s is running elsewhere or finished: nothing to do", execution_id)
    else:
        runner.run_claimed(execution)
        if execution.status == ExecutionStatus.FAILED:
            raise JobFailed(f"{execution.job_key}: {execution.error_message}")

"""Celery tasks. They take ids, not objects, and are safe to deliver twice."""

from celery import shared_task

from jobs import runner


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_execution(execution_id: int) -> None:
    """Run one pending execution; a re-delivered task finds it claimed and does nothing."""
    execution = runner.claim(execution_id)
    if execution is not None:
        runner.run_claimed(execution)

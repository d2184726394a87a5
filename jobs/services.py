"""Starting and stopping runs: the functions both vendor APIs and the scheduler call."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs import leases
from jobs.models import Execution, ExecutionStatus, Job, JobStatus
from jobs.queueing import publish


class JobDisabled(Exception):
    """The job is not active and cannot be started."""


def queue(execution: Execution) -> None:
    """Send the execution to a worker once the transaction that created it commits."""
    transaction.on_commit(lambda: publish(execution))


def new_execution(
    job: Job,
    *,
    options: dict[str, Any] | None = None,
    guid: str | None = None,
    requested_by: str = "",
) -> Execution:
    fields: dict[str, Any] = {
        "job": job,
        "job_guid": job.guid,
        "job_key": job.job_key,
        "listener_type": job.kind,
        "is_dynamic": job.is_dynamic,
        "options": options or {},
        "requested_by": requested_by,
    }
    if guid:
        fields["guid"] = guid
    return Execution.objects.create(**fields)


def start_job(
    job: Job, *, options: dict[str, Any] | None = None, requested_by: str = "", force: bool = False
) -> Execution | None:
    """Queue a run of `job`; None when it is already running (the call is then a no-op).

    `force` starts a disabled job too (dynamic jobs run at once whatever their flag).
    """
    if not job.active and not force:
        raise JobDisabled(f"Job '{job.job_key}' is disabled; enable it before starting it.")
    if leases.take_over_dead(job):  # its run's worker died: that run is queued again
        return Execution.objects.filter(job=job, status=ExecutionStatus.PENDING).first()
    with transaction.atomic():
        # Claiming the job row is what keeps two starts (API, scheduler, trigger) from both running.
        claimed = Job.objects.filter(pk=job.pk, status=JobStatus.READY).update(
            status=JobStatus.RUNNING, last_run_time=timezone.now()
        )
        if not claimed:
            return None
        execution = new_execution(job, options=options, requested_by=requested_by)
        queue(execution)
    return execution


def stop_job(job: Job) -> int:
    """Ask the job's pending and running executions to stop; returns how many were asked."""
    with transaction.atomic():
        pending = Execution.objects.filter(job=job, status=ExecutionStatus.PENDING)
        cancelled = pending.update(
            status=ExecutionStatus.CANCELLED,
            cancel_requested=True,
            error_message="Stopped on request before it started.",
            finished_at=timezone.now(),
        )
        running = Execution.objects.filter(job=job, status=ExecutionStatus.RUNNING).update(
            cancel_requested=True
        )
        if cancelled and not running:
            Job.objects.filter(pk=job.pk).update(status=JobStatus.READY)
    return cancelled + running


INTERRUPTED_MESSAGE = "Interrupted: the gateway stopped while this execution was queued or running."


def recover_interrupted() -> list[str]:
    """Close executions that were pending or running when the embedded gateway last stopped.

    Their tasks lived in the in-memory broker and are gone; leaving them open would keep
    their jobs marked running forever. Returns one line per execution closed.
    """
    interrupted = Execution.objects.filter(
        status__in=(ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
    )
    lines = [
        f"Execution {e.guid} of {e.job_key} was interrupted by a restart." for e in interrupted
    ]
    with transaction.atomic():
        job_ids = list(interrupted.exclude(job=None).values_list("job_id", flat=True))
        interrupted.update(
            status=ExecutionStatus.FAILED,
            success=False,
            error_message=INTERRUPTED_MESSAGE,
            finished_at=timezone.now(),
        )
        Job.objects.filter(pk__in=job_ids).update(status=JobStatus.READY)
    return lines

"""Execution leases: no run stays `running` for good because its worker died.

A worker that claims an execution holds a lease on it (`Execution.lease_expires_at`), which a
thread of that worker process renews every third of GATEWAY_EXECUTION_LEASE_SECONDS while the
execution runs. When a worker dies (its process killed, its host gone) the renewals stop and
the lease runs out; the execution is then taken over:

- by the next delivery of its task (Celery redelivers a task whose worker was lost), whose
  claim accepts a running execution with an expired lease as well as a pending one;
- by a reaper (`reap`): the scheduler's every tick and every worker's renewal thread look
  for expired leases and queue such executions again;
- by `POST /job/start` on the job (`take_over_dead`), which queues it at once.

Taken over, the execution runs its work again from the start: the reader reads again (its
stage and change log were not published; or they were, and the new owner finishes the
publication instead of reading again), and the writer
applies the change logs after its recorded position (the ExecutionId it stores in the
target in the same transaction as the rows), so nothing is lost and nothing applied twice.
A direct writer's row run inside the dead reader's task is closed: the reader's new run
runs its writer again.

A worker only paused past its lease (SIGSTOP, a VM frozen, a long swap) and then resumed must
not write once its run was taken over. Each claim has a fence token (`fence_token`: the
claim's time first), and a later claim always carries a larger one:

- in the gateway's database, the paused worker's progress, finish, stop-flag polls and log
  lines are conditional on still owning the execution (`owned`, `same_claim`), and raise
  `LeaseLost` when it does not (the run then stops, rolling back what it had not committed,
  and records nothing more);
- a reader's change log and stage are published by one such conditional transaction
  (jobs/sync/run.py `_finish_reader`), and a taken-over reader works in a stage generation of
  its own (jobs/sync/plan.py `stage_for_run`), never waiting for the paused one's lock;
- in a SQL target, each writer holds its token in `_datazen_fence` (jobs/systems/db/writer.py):
  the new owner writes its token before it applies, and the old one's transaction checks its
  own is still there just before it commits, so the target refuses the stale commit.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from jobs.models import Execution, ExecutionStatus, Job, JobKind, JobStatus, LogEntry, LogLevel
from jobs.systems.base import LeaseLost

logger = logging.getLogger(__name__)

ORPHANED_WRITER_MESSAGE = (
    "Interrupted: the worker running this direct writer stopped renewing its lease; "
    "the reader's resumed run applies its changes."
)


def lease_seconds() -> float:
    return float(settings.GATEWAY_EXECUTION_LEASE_SECONDS)


def renew_seconds() -> float:
    return lease_seconds() / 3


def _until(now: datetime) -> datetime:
    return now + timedelta(seconds=lease_seconds())


# -- fencing ---------------------------------------------------------------------------------


def fence_token(execution: Execution) -> str:
    """The claim's fence token: larger for every later claim of a job's runs. Its time comes
    first: a takeover claims only once its own clock is past the lease the last owner set, so
    it is later than that owner's claim whatever the clocks' skew; a later run is claimed
    later (clocks within a lease of each other). Text, so zero-padded."""
    assert execution.claimed_at is not None, "fence_token of an unclaimed execution"
    millis = int(execution.claimed_at.timestamp() * 1000)
    return f"{millis:015d}.{execution.pk:020d}.{execution.takeovers:010d}"


def owned(execution: Execution) -> QuerySet[Execution]:
    """The execution's row, as long as this claim of it still runs it (else no row)."""
    return Execution.objects.filter(
        pk=execution.pk,
        worker=execution.worker,
        takeovers=execution.takeovers,
        status=ExecutionStatus.RUNNING,
    )


def same_claim(execution: Execution) -> QuerySet[Execution]:
    """The execution's row unless a later claim took it over (whether it still runs or not:
    its log takes lines after it ended, the triggers' notes)."""
    return Execution.objects.filter(
        pk=execution.pk, worker=execution.worker, takeovers=execution.takeovers
    )


def lost(execution: Execution) -> LeaseLost:
    return LeaseLost(
        f"Worker {execution.worker or '?'} lost its lease on execution {execution.pk} of "
        f"{execution.job_key}: another worker took the run over; stopping without writing."
    )


# -- claiming --------------------------------------------------------------------------------


def claim(execution_id: int, owner: str) -> Execution | None:
    """Move a pending execution, or a running one whose lease expired, to running for `owner`.

    None when another live worker has it or it has finished (a re-delivered task then does
    nothing). The conditional updates are what keep two workers from both running it.
    """
    now = timezone.now()
    fields = {
        "status": ExecutionStatus.RUNNING,
        "worker": owner,
        "lease_expires_at": _until(now),
        "claimed_at": now,
    }
    claimed = Execution.objects.filter(pk=execution_id, status=ExecutionStatus.PENDING).update(
        started_at=now, **fields
    )
    taken_over = False
    if not claimed:
        with transaction.atomic():
            dead = Execution.objects.filter(
                pk=execution_id, status=ExecutionStatus.RUNNING, lease_expires_at__lt=now
            )
            # A row locked by its worker (a log line, a publication: jobs/runner.py,
            # jobs/sync/run.py) is left for a later try: a worker frozen inside that instant
            # must not hold up the taker, the reaper or the renewals sharing its thread.
            found = dead.select_for_update(skip_locked=True).values_list("worker").first()
            previous = found[0] if found else ""
            claimed = dead.update(takeovers=F("takeovers") + 1, **fields) if found else 0
        taken_over = bool(claimed)
    if not claimed:
        return None
    keep_renewing(owner)
    execution = Execution.objects.select_related("job").get(pk=execution_id)
    if taken_over:
        _close_orphaned_writers(execution)
        _note(
            execution,
            f"Taken over by {owner}: worker {previous or '?'} stopped renewing its lease; "
            "running again from the writer's recorded position.",
        )
    return execution


# -- reaping ---------------------------------------------------------------------------------


def reap(now: datetime | None = None, job: Job | None = None) -> list[Execution]:
    """Queue again the running executions whose lease expired; returns those queued.

    Any number of reapers may run at once: each step is a conditional update, so one wins.
    """
    from jobs.services import queue  # services imports tasks, whose runner imports this module

    now = now or timezone.now()
    expired = Execution.objects.filter(status=ExecutionStatus.RUNNING, lease_expires_at__lt=now)
    if job is not None:
        expired = expired.filter(job=job)
    queued: list[Execution] = []
    for execution in expired.order_by("pk"):
        if _is_inline_writer(execution):
            _close_if_expired(execution, now)
            continue
        with transaction.atomic():
            expired_row = Execution.objects.filter(
                pk=execution.pk, status=ExecutionStatus.RUNNING, lease_expires_at__lt=now
            )
            # Skipped while its worker holds the row's lock (see `claim`): the next pass sees it.
            if not expired_row.select_for_update(skip_locked=True).exists():
                continue
            requeued = expired_row.update(
                status=ExecutionStatus.PENDING,
                lease_expires_at=None,
                takeovers=F("takeovers") + 1,
            )
            if not requeued:
                continue
            _close_orphaned_writers(execution)
            _note(
                execution,
                f"Worker {execution.worker or '?'} stopped renewing its lease; queued again "
                "to resume from the writer's recorded position.",
            )
            queue(execution)
        logger.warning(
            "execution %s of %s: worker %s lost its lease; queued again",
            execution.pk,
            execution.job_key,
            execution.worker,
        )
        queued.append(execution)
    return queued


def take_over_dead(job: Job) -> bool:
    """Before starting `job`: queue again its run whose worker died. True when one was (the
    start is then that run); a run with a live lease is left to its worker."""
    return job.status == JobStatus.RUNNING and bool(reap(job=job))


def _is_inline_writer(execution: Execution) -> bool:
    # A direct job's writer row shares its reader's guid and runs inside the reader's task.
    return (
        execution.listener_type == JobKind.WRITER
        and Execution.objects.filter(guid=execution.guid, listener_type=JobKind.READER)
        .exclude(pk=execution.pk)
        .exists()
    )


def _close_orphaned_writers(reader_run: Execution) -> None:
    if reader_run.listener_type != JobKind.READER:
        return
    orphans = Execution.objects.filter(
        guid=reader_run.guid,
        listener_type=JobKind.WRITER,
        status__in=(ExecutionStatus.PENDING, ExecutionStatus.RUNNING),
    )
    for orphan in orphans:
        _close_if_expired(orphan, None)


def _close_if_expired(execution: Execution, now: datetime | None) -> None:
    rows = Execution.objects.filter(
        pk=execution.pk, status__in=(ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
    )
    if now is not None:
        rows = rows.filter(lease_expires_at__lt=now)
    closed = rows.update(
        status=ExecutionStatus.FAILED,
        success=False,
        error_message=ORPHANED_WRITER_MESSAGE,
        finished_at=timezone.now(),
        lease_expires_at=None,
    )
    if closed:
        _note(execution, ORPHANED_WRITER_MESSAGE, LogLevel.WARNING)


def _note(execution: Execution, message: str, level: int = LogLevel.WARNING) -> None:
    sequence = LogEntry.objects.filter(execution=execution).count() + 1
    LogEntry.objects.create(
        execution=execution,
        job_guid=execution.job_guid,
        sequence=sequence,
        level=level,
        message=message,
    )


# -- renewing --------------------------------------------------------------------------------

_renewer_lock = threading.Lock()
_renewer_pid: int | None = None
_renewer_stop = threading.Event()


def keep_renewing(owner: str) -> None:
    """Start this process's renewal thread once (again in a forked child: threads don't fork)."""
    global _renewer_pid, _renewer_stop
    if _renewer_pid == os.getpid():
        return
    with _renewer_lock:
        if _renewer_pid == os.getpid():
            return
        _renewer_pid = os.getpid()
        _renewer_stop = threading.Event()
        threading.Thread(
            target=_renew_forever, args=(owner, _renewer_stop), name="execution-lease", daemon=True
        ).start()


def stop_renewing() -> None:
    """End this process's renewal thread; the next claim starts another. The tests call it
    after each case: a thread left running beside the next cases logged a traceback at every
    renewal once their database was gone, and CPython 3.11's traceback formatting parses
    source with the `ast` module, whose state is shared by all threads — the import-graph
    tests' own parsing then failed ("AST constructor recursion depth mismatch")."""
    global _renewer_pid
    with _renewer_lock:
        _renewer_stop.set()
        _renewer_pid = None


def renew(owner: str, now: datetime | None = None) -> int:
    """Extend the lease of every execution `owner` runs; the number renewed."""
    now = now or timezone.now()
    return Execution.objects.filter(worker=owner, status=ExecutionStatus.RUNNING).update(
        lease_expires_at=_until(now)
    )


def _renew_forever(owner: str, stop: threading.Event) -> None:
    while not stop.wait(renew_seconds()):
        # Nothing may end this thread: a database hiccup is logged, and the next renewal
        # comes well before the lease expires.
        try:
            try:
                renew(owner)
                # Any worker reaps too, so a fleet without a scheduler still resumes dead runs.
                reap()
            finally:
                close_old_connections()
        except Exception:
            logger.exception("could not renew the execution leases of %s", owner)

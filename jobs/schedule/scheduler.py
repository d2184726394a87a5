"""The scheduler: starts jobs whose CronSchedule is due, once per tick, from one leader.

Run embedded (a thread of `manage.py run`) or as its own process (`manage.py runscheduler`).
Any number may run: a database lease elects the leader, and each due tick is claimed with a
conditional UPDATE of `Job.next_run_at`, so a tick is started at most once (docs/schedules.md).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from jobs import leases
from jobs.agent import is_running
from jobs.models import Execution, Job, SchedulerLease
from jobs.schedule.quartz import QuartzSchedule
from jobs.services import JobDisabled, start_job

logger = logging.getLogger(__name__)

LEASE_NAME = "scheduler"


def _holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Scheduler:
    """Starts due scheduled jobs; `tick(now)` does one pass, `run_forever` loops."""

    def __init__(
        self,
        *,
        interval: float | None = None,
        lease_seconds: float | None = None,
        holder: str | None = None,
    ) -> None:
        self.interval = interval or settings.GATEWAY_SCHEDULER_INTERVAL
        self.lease = timedelta(seconds=lease_seconds or settings.GATEWAY_SCHEDULER_LEASE_SECONDS)
        self.holder = holder or _holder_name()
        self.is_leader = False
        self._schedules: dict[str, QuartzSchedule | None] = {}
        # What this process last checked per job, so a schedule changed behind the API's back
        # (the admin console) gets its next_run_at recomputed.
        self._checked: dict[int, tuple[str, datetime | None]] = {}
        self._reaped_at: datetime | None = None

    # --- leadership ------------------------------------------------------------------------

    def acquire(self, now: datetime) -> bool:
        """Take or renew the lease; True when this scheduler is the leader until it expires."""
        until = now + self.lease
        taken = (
            SchedulerLease.objects.filter(name=LEASE_NAME)
            .filter(holder=self.holder)
            .update(expires_at=until)
        ) or (
            SchedulerLease.objects.filter(name=LEASE_NAME, expires_at__lt=now).update(
                holder=self.holder, expires_at=until, acquired_at=now
            )
        )
        if not taken and not SchedulerLease.objects.filter(name=LEASE_NAME).exists():
            try:
                with transaction.atomic():
                    SchedulerLease.objects.create(
                        name=LEASE_NAME, holder=self.holder, expires_at=until, acquired_at=now
                    )
                taken = 1
            except IntegrityError:  # another scheduler created it first
                taken = 0
        if bool(taken) != self.is_leader:
            logger.info(
                "scheduler %s %s leadership", self.holder, "took" if taken else "does not hold"
            )
        self.is_leader = bool(taken)
        return self.is_leader

    def release(self) -> None:
        """Give the lease up at once, so another scheduler need not wait for it to expire."""
        SchedulerLease.objects.filter(name=LEASE_NAME, holder=self.holder).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        self.is_leader = False

    # --- ticks -----------------------------------------------------------------------------

    def schedule_for(self, expression: str) -> QuartzSchedule | None:
        if expression not in self._schedules:
            try:
                self._schedules[expression] = QuartzSchedule.parse(expression)
            except ValueError as exc:
                # Saving refuses these; one stored before that rule must not stop the others.
                logger.warning("CronSchedule %r cannot be scheduled: %s", expression, exc)
                self._schedules[expression] = None
        return self._schedules[expression]

    def tick(self, now: datetime | None = None) -> list[Execution]:
        """Start every job due at `now`; returns the executions this call started.

        Nothing starts while the agent is stopped (POST /stop) or for a disabled job; their
        `next_run_at` stays in the past, so each runs once when it may run again.
        """
        now = now or timezone.now()
        if not is_running() or not self.acquire(now):
            return []
        started: list[Execution] = []
        jobs = (
            Job.objects.filter(active=True, is_dynamic=False)
            .exclude(cron_schedule="")
            .only(
                "id",
                "guid",
                "kind",
                "job_key",
                "is_dynamic",
                "cron_schedule",
                "next_run_at",
                "active",
                "status",
            )
        )
        for job in jobs:
            schedule = self.schedule_for(job.cron_schedule.strip())
            if schedule is None:
                continue
            due = self._due(job, schedule, now)
            if due is not None:
                execution = self._start(job, due, schedule.next_after(now))
                if execution is not None:
                    started.append(execution)
        return started

    def _due(self, job: Job, schedule: QuartzSchedule, now: datetime) -> datetime | None:
        """The missed or current fire time to start `job` for, or None when it is not due."""
        current = job.next_run_at
        seen = self._checked.get(job.pk)
        if current is not None and seen != (job.cron_schedule, current):
            upcoming = schedule.next_after(now)
            # next_run_at was computed from an earlier moment, so under this schedule it is a
            # fire time no later than the next one; otherwise the schedule changed.
            if current > upcoming or not schedule.fires_at(current):
                current = None
        if current is None:
            fresh = schedule.next_after(now)
            Job.objects.filter(pk=job.pk, next_run_at=job.next_run_at).update(next_run_at=fresh)
            self._checked[job.pk] = (job.cron_schedule, fresh)
            return None
        self._checked[job.pk] = (job.cron_schedule, current)
        return current if current <= now else None

    def _start(self, job: Job, due: datetime, following: datetime) -> Execution | None:
        with transaction.atomic():
            # The conditional UPDATE is the claim: of two schedulers (say a leader whose lease
            # ran out mid-tick and its successor) only one moves next_run_at on.
            claimed = Job.objects.filter(pk=job.pk, next_run_at=due, active=True).update(
                next_run_at=following
            )
            if not claimed:
                return None
            self._checked[job.pk] = (job.cron_schedule, following)
            try:
                execution = start_job(
                    job,
                    options={
                        "trigger": "schedule",
                        "scheduled_for": due.isoformat(),
                        "scheduler": self.holder,
                    },
                    requested_by="scheduler",
                )
            except JobDisabled:
                return None
        if execution is None:
            logger.info("%s is still running: its run due %s is skipped", job.job_key, due)
        else:
            logger.info("started %s (due %s)", job.job_key, due)
        return execution

    # --- the loop --------------------------------------------------------------------------

    def run_forever(self, stop_event: threading.Event) -> None:
        """Tick every `interval` seconds until `stop_event` is set; errors never end the loop."""
        logger.info("scheduler %s running every %ss", self.holder, self.interval)
        try:
            while not stop_event.is_set():
                close_old_connections()
                try:
                    self.tick()
                    self.reap_dead_runs()
                except Exception:  # a database hiccup: log it and try again next tick
                    logger.exception("scheduler tick failed")
                stop_event.wait(self._sleep_seconds())
        finally:
            try:
                if self.is_leader:
                    self.release()
            finally:
                close_old_connections()
            logger.info("scheduler %s stopped", self.holder)

    def reap_dead_runs(self, now: datetime | None = None) -> list[Execution]:
        """As leader, queue again the runs whose worker died (jobs/leases.py); at most once per
        lease renewal interval, since a lease cannot expire faster than that."""
        now = now or timezone.now()
        if not self.is_leader:
            return []
        if self._reaped_at is not None and (now - self._reaped_at).total_seconds() < (
            leases.renew_seconds()
        ):
            return []
        self._reaped_at = now
        return leases.reap(now)

    def _sleep_seconds(self) -> float:
        # Wake just after a whole multiple of the interval, so second-level schedules fire on
        # time rather than drifting by the tick's own duration.
        now = timezone.now().timestamp()
        return max(0.01, self.interval - (now % self.interval) + 0.005)

"""The scheduler in one process: due ticks start once, missed windows run once, a leader."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from jobs.agent import set_running
from jobs.models import Execution, Job, JobKind, JobStatus, SchedulerLease
from jobs.schedule.scheduler import Scheduler

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)  # a Monday


def make_job(key: str = "films", cron: str = "0 */5 * ? * *", **fields: object) -> Job:
    return Job.objects.create(kind=JobKind.READER, job_key=key, cron_schedule=cron, **fields)


def runs(job: Job) -> list[Execution]:
    return list(Execution.objects.filter(job=job).order_by("id"))


def finish_runs(job: Job) -> None:
    """What a worker does when the run ends: the job is ready again."""
    Job.objects.filter(pk=job.pk).update(status=JobStatus.READY)


def test_a_new_schedule_waits_for_its_first_fire_time() -> None:
    job = make_job()
    assert Scheduler().tick(T0 + timedelta(seconds=30)) == []
    job.refresh_from_db()
    assert job.next_run_at == T0 + timedelta(minutes=5)
    assert runs(job) == []


def test_a_due_tick_starts_the_job_once_and_moves_to_the_next_fire_time() -> None:
    # given a job due at 10:05
    job = make_job(next_run_at=T0 + timedelta(minutes=5))
    scheduler = Scheduler()
    # when the scheduler ticks at 10:05:00 and again in the same second
    started = scheduler.tick(T0 + timedelta(minutes=5))
    again = scheduler.tick(T0 + timedelta(minutes=5, milliseconds=500))
    # then one run, tagged with its tick, and the next one is 10:10
    assert [e.job_id for e in started] == [job.pk]
    assert again == []
    (execution,) = runs(job)
    assert execution.options == {
        "trigger": "schedule",
        "scheduled_for": "2026-03-02T10:05:00+00:00",
        "scheduler": scheduler.holder,
    }
    assert execution.requested_by == "scheduler"
    job.refresh_from_db()
    assert job.next_run_at == T0 + timedelta(minutes=10)
    assert job.status == JobStatus.RUNNING


def test_each_tick_runs_once_over_many_ticks() -> None:
    job = make_job(cron="*/10 * * * * ?", next_run_at=T0 + timedelta(seconds=10))
    scheduler = Scheduler()
    for second in range(0, 61):  # ticking every second for a minute
        scheduler.tick(T0 + timedelta(seconds=second))
        finish_runs(job)
    fired = [e.options["scheduled_for"][11:19] for e in runs(job)]
    assert fired == ["10:00:10", "10:00:20", "10:00:30", "10:00:40", "10:00:50", "10:01:00"]


def test_a_job_still_running_at_its_next_tick_is_not_started_twice() -> None:
    job = make_job(next_run_at=T0)
    scheduler = Scheduler()
    scheduler.tick(T0)
    # the run takes longer than five minutes
    assert scheduler.tick(T0 + timedelta(minutes=5)) == []
    assert len(runs(job)) == 1
    job.refresh_from_db()
    assert job.next_run_at == T0 + timedelta(minutes=10)
    # once it has finished, the following tick starts it again
    finish_runs(job)
    assert len(scheduler.tick(T0 + timedelta(minutes=10))) == 1


def test_catch_up_after_the_agent_was_stopped_runs_once() -> None:
    # given a job due every five minutes and an agent stopped for an hour (POST /stop)
    job = make_job(next_run_at=T0 + timedelta(minutes=5))
    scheduler = Scheduler()
    set_running(False)
    for minute in range(0, 61):
        assert scheduler.tick(T0 + timedelta(minutes=minute)) == []
    # when the agent is started again (POST /start)
    set_running(True)
    started = scheduler.tick(T0 + timedelta(minutes=61))
    later = scheduler.tick(T0 + timedelta(minutes=62))
    # then the job runs once for the twelve missed windows, then keeps its schedule
    assert len(started) == 1 and later == []
    job.refresh_from_db()
    assert job.next_run_at == T0 + timedelta(minutes=65)


def test_a_disabled_job_runs_once_when_enabled_after_missing_windows() -> None:
    job = make_job(next_run_at=T0 + timedelta(minutes=5), active=False)
    scheduler = Scheduler()
    for minute in range(0, 30):
        scheduler.tick(T0 + timedelta(minutes=minute))
    assert runs(job) == []
    Job.objects.filter(pk=job.pk).update(active=True)  # /job/enable?active=1
    assert len(scheduler.tick(T0 + timedelta(minutes=30, seconds=1))) == 1
    finish_runs(job)
    assert scheduler.tick(T0 + timedelta(minutes=31)) == []
    assert len(runs(job)) == 1


def test_gateway_down_for_hours_runs_once_on_restart() -> None:
    job = make_job(next_run_at=T0 + timedelta(minutes=5))
    # a fresh scheduler process starts three hours later
    started = Scheduler().tick(T0 + timedelta(hours=3, seconds=2))
    assert len(started) == 1
    job.refresh_from_db()
    assert job.next_run_at == T0 + timedelta(hours=3, minutes=5)


def test_blank_and_dynamic_jobs_are_not_scheduled() -> None:
    manual = make_job("manual", cron="", next_run_at=T0)
    dynamic = make_job("dynamic", is_dynamic=True, next_run_at=T0)
    assert Scheduler().tick(T0 + timedelta(minutes=1)) == []
    assert runs(manual) == [] and runs(dynamic) == []


def test_a_schedule_changed_behind_the_api_is_recomputed() -> None:
    # given a yearly job whose schedule an operator edits to every minute in the console
    job = make_job(cron="0 0 0 1 1 ?", next_run_at=datetime(2027, 1, 1, tzinfo=UTC))
    scheduler = Scheduler()
    scheduler.tick(T0)
    Job.objects.filter(pk=job.pk).update(cron_schedule="0 * * ? * *")
    # when
    scheduler.tick(T0 + timedelta(seconds=1))
    # then it is due at the next minute, not next year
    job.refresh_from_db()
    assert job.next_run_at == T0 + timedelta(minutes=1)
    assert len(scheduler.tick(T0 + timedelta(minutes=1))) == 1


def test_only_the_leader_starts_jobs_and_another_takes_over_when_its_lease_expires() -> None:
    job = make_job(cron="0 * * ? * *", next_run_at=T0)
    first = Scheduler(holder="first", lease_seconds=90)
    second = Scheduler(holder="second", lease_seconds=90)
    assert len(first.tick(T0)) == 1
    finish_runs(job)
    # the second cannot lead while the first's lease is fresh, even when a job is due
    assert second.tick(T0 + timedelta(minutes=1)) == []
    assert not second.is_leader
    assert len(first.tick(T0 + timedelta(minutes=1))) == 1  # renewed until 10:02:30
    finish_runs(job)
    assert second.tick(T0 + timedelta(minutes=2)) == []
    # the first stops renewing; once its lease has expired the second leads
    assert len(second.tick(T0 + timedelta(minutes=3))) == 1
    assert SchedulerLease.objects.get().holder == "second"
    finish_runs(job)
    assert first.tick(T0 + timedelta(minutes=4)) == []
    assert len(runs(job)) == 3


def test_a_stale_leader_cannot_start_a_tick_its_successor_started() -> None:
    job = make_job(cron="0 * * ? * *", next_run_at=T0)
    stale = Scheduler(holder="stale")
    stale.acquire(T0 - timedelta(minutes=1))
    stale._checked[job.pk] = (job.cron_schedule, T0)
    assert len(Scheduler(holder="successor").tick(T0 + timedelta(seconds=30))) == 1
    finish_runs(job)
    # the stale leader wakes up believing T0 is still due: the claim on next_run_at fails
    assert stale._start(job, T0, T0 + timedelta(minutes=1)) is None
    assert len(runs(job)) == 1


def test_run_forever_stops_on_the_event_and_gives_up_the_lease(transactional_db: None) -> None:
    stop = threading.Event()
    scheduler = Scheduler(interval=0.05)
    thread = threading.Thread(target=scheduler.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while not SchedulerLease.objects.filter(holder=scheduler.holder).exists():
            assert datetime.now(UTC) < deadline, "the scheduler never took the lease"
            stop.wait(0.02)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert SchedulerLease.objects.get().expires_at < datetime.now(UTC)


def test_the_datazen_stop_start_and_enable_calls_drive_the_scheduler(datazen) -> None:
    # given a job due every five minutes, created over the DataZen API
    body = {
        "JobReader": {
            "JobKey": "api-scheduled",
            "SqlRead": "SELECT 1 AS id",
            "Path": "C:\\\\tmp",
            "ConnectionString": "db",
            "SyncStrategy": "Full",
            "Active": True,
            "CronSchedule": "0 */5 * ? * *",
        },
        "JobWriter": None,
    }
    assert datazen.post("/job", body, format="json").status_code == 200
    job = Job.objects.get(job_key="api-scheduled")
    scheduler = Scheduler()
    scheduler.tick(T0)  # schedules it for 10:05
    # when the agent is stopped over the API, nothing starts at 10:05 or 10:10
    assert datazen.post("/stop").status_code == 200
    assert scheduler.tick(T0 + timedelta(minutes=5)) == []
    assert scheduler.tick(T0 + timedelta(minutes=10)) == []
    # then /start resumes: the missed windows run once
    assert datazen.post("/start").status_code == 200
    assert len(scheduler.tick(T0 + timedelta(minutes=11))) == 1
    finish_runs(job)
    # and a job disabled over the API is skipped until enabled again
    assert datazen.post(f"/job/enable?guid={job.guid}&active=0").status_code == 200
    assert scheduler.tick(T0 + timedelta(minutes=15)) == []
    assert datazen.post(f"/job/enable?guid={job.guid}&active=1").status_code == 200
    assert len(scheduler.tick(T0 + timedelta(minutes=16))) == 1
    assert len(runs(job)) == 2


def test_saving_a_cron_croniter_cannot_run_is_refused_over_the_api(datazen) -> None:
    body = {
        "JobReader": {
            "JobKey": "bad-cron",
            "SqlRead": "SELECT 1 AS id",
            "Path": "C:\\\\tmp",
            "ConnectionString": "db",
            "CronSchedule": "0 0 12 LW * ?",
        },
        "JobWriter": None,
    }
    response = datazen.post("/job", body, format="json")
    assert response.status_code == 400
    assert "LW" in response.content.decode()
    assert not Job.objects.filter(job_key="bad-cron").exists()

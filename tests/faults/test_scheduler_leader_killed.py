"""Two `manage.py runscheduler` processes on one PostgreSQL database (the fleet's layout):
every tick is started exactly once, and when the leader dies the other takes over."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime

import psycopg
import pytest
import redis

from tests import services
from tests.processes import gateway_env, manage, started

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

LEASE_SECONDS = 1.5


def finish_pending_runs(db: psycopg.Connection) -> None:
    """Stand in for the workers: end every pending run so its job is ready for its next tick."""
    with db.transaction():
        db.execute(
            "UPDATE jobs_execution SET status = 'succeeded', success = true, "
            "finished_at = now() WHERE status = 'pending'"
        )
        db.execute("UPDATE jobs_job SET status = 'ready' WHERE status = 'running'")


def wait_for_runs(
    db: psycopg.Connection, per_job: int, scheduler_pid: int | None = None, timeout: float = 60
) -> None:
    """Play the workers until each job has `per_job` runs (started by `scheduler_pid`)."""
    deadline = time.monotonic() + timeout
    while True:
        finish_pending_runs(db)
        counts = db.execute(
            "SELECT j.job_key, count(e.id) FROM jobs_job j LEFT JOIN jobs_execution e "
            "ON e.job_id = j.id AND (%s::text IS NULL OR split_part(e.options->>'scheduler', "
            "':', 2) = %s::text) GROUP BY j.job_key",
            (None if scheduler_pid is None else str(scheduler_pid),) * 2,
        ).fetchall()
        if counts and all(count >= per_job for _, count in counts):
            return
        assert time.monotonic() < deadline, f"too few scheduled runs: {counts}"
        time.sleep(0.05)


def leader_pid(db: psycopg.Connection) -> int | None:
    row = db.execute("SELECT holder FROM jobs_schedulerlease WHERE expires_at > now()").fetchone()
    return int(row[0].split(":")[1]) if row else None


def test_two_scheduler_processes_start_each_tick_once_and_fail_over(tmp_path) -> None:
    broker = services.redis_url(db=0)
    queue = f"sched_{uuid.uuid4().hex[:8]}"
    with services.postgres_database() as database:
        env = gateway_env(
            tmp_path / "var",
            DATABASE_URL=database.replace("postgresql+psycopg://", "postgres://"),
            CELERY_BROKER_URL=broker,
            CELERY_TASK_DEFAULT_QUEUE=queue,
            DJANGO_SECRET_KEY="scheduler-test-secret",
            GATEWAY_SCHEDULER_INTERVAL="0.2",
            GATEWAY_SCHEDULER_LEASE_SECONDS=str(LEASE_SECONDS),
        )
        manage(env, "migrate", "--noinput")
        # given three jobs due every second
        manage(
            env,
            "shell",
            "-c",
            "from jobs.models import Job\n"
            "for key in ('every-second-a', 'every-second-b', 'every-second-c'):\n"
            "    Job.objects.create(kind='reader', job_key=key, cron_schedule='* * * ? * *')",
        )
        command = [sys.executable, "manage.py", "runscheduler"]
        conninfo = database.replace("postgresql+psycopg://", "postgresql://")
        with (
            psycopg.connect(conninfo, autocommit=True) as db,
            started(command, env, tmp_path / "s1.log") as first,
            started(command, env, tmp_path / "s2.log") as second,
        ):
            processes = {first.pid: first, second.pid: second}
            # when both run until every job has had a few ticks…
            wait_for_runs(db, per_job=3)
            # …then the leader dies without letting go of its lease
            killed = leader_pid(db)
            assert killed in processes, f"the lease is held by {killed}, not a scheduler"
            os.kill(killed, signal.SIGKILL)
            survivor_pid = first.pid if killed == second.pid else second.pid
            # and the other one carries on once the lease has expired
            wait_for_runs(db, per_job=3, scheduler_pid=survivor_pid)
            finish_pending_runs(db)
            assert processes[survivor_pid].poll() is None
            rows = db.execute("SELECT job_key, options FROM jobs_execution ORDER BY id").fetchall()
    redis.Redis.from_url(broker).delete(queue)

    # then every job ran on every tick it was started for, never twice for the same tick
    ticks: dict[str, list[str]] = defaultdict(list)
    schedulers: Counter[int] = Counter()
    for job_key, options in rows:
        assert options["trigger"] == "schedule"
        ticks[job_key].append(options["scheduled_for"])
        schedulers[int(options["scheduler"].split(":")[1])] += 1
    assert set(ticks) == {"every-second-a", "every-second-b", "every-second-c"}
    for job_key, fired in ticks.items():
        assert len(fired) == len(set(fired)), f"{job_key} started twice for one tick: {fired}"
        assert fired == sorted(fired), fired
        assert all(datetime.fromisoformat(t).microsecond == 0 for t in fired)
    # both processes led: the first until it was killed, the survivor after
    assert set(schedulers) == set(processes), schedulers

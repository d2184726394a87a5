"""A worker dies while it applies a job: its pool child killed (SIGKILL), or the whole worker
(main process and children) killed. The job finishes on its own, with no hand reset, within
the documented time (lease + a third of it, plus the run), and the target equals the source:
nothing lost, nothing applied twice."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from tests.faults.conftest import (
    LEASE_SECONDS,
    RESTORE_SECONDS,
    VISIBILITY_SECONDS,
    Fleet,
    children,
    start_fleet,
    table_digest,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

# Lease expiry plus one reaper pass, and a worker's start-up after a kill.
RESUME_BOUND = LEASE_SECONDS + LEASE_SECONDS / 3 + 5


def _kill_mid_apply(fleet: Fleet, source: str, target: str, whole_worker: bool) -> None:
    # when the job runs and its writer has applied part of the rows…
    job, run, worker, written = fleet.start_applying(source, target)
    # …its worker dies
    if whole_worker:
        os.killpg(fleet.processes[fleet.worker_process(worker)].pid, signal.SIGKILL)
    else:
        os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)
    killed_at = time.monotonic()
    # then the run is taken over by another worker process…
    fleet.taken_over(run, worker)
    resumed = time.monotonic() - killed_at
    assert resumed < RESUME_BOUND, resumed
    # …and finishes on its own
    status, takeovers, error = fleet.wait_for(
        "the run finishing after the kill", lambda: fleet.finished(run), timeout=180
    )
    took = time.monotonic() - killed_at
    assert status == "succeeded", error
    assert takeovers >= 1
    assert table_digest(target) == table_digest(source)
    print(
        f"\n{'whole worker' if whole_worker else 'worker child'} SIGKILL at {written} rows "
        f"written: resumed {resumed:.1f} s, finished {took:.1f} s after the kill "
        f"(lease {LEASE_SECONDS:g} s)"
    )
    # and the job is ready again
    assert fleet.query("SELECT status FROM jobs_job WHERE guid = %s", job) == [("ready",)]


def test_worker_child_killed_mid_apply(fleet: Fleet, source_and_target: tuple[str, str]) -> None:
    _kill_mid_apply(fleet, *source_and_target, whole_worker=False)


def test_whole_worker_killed_mid_apply(fleet: Fleet, source_and_target: tuple[str, str]) -> None:
    _kill_mid_apply(fleet, *source_and_target, whole_worker=True)


def test_a_run_received_by_a_worker_killed_before_it_claimed_it_starts_elsewhere(
    fleet: Fleet, source_and_target: tuple[str, str]
) -> None:
    source, target = source_and_target
    start_fleet(fleet, workers=1, connections={"src": source, "dst": target})
    job = fleet.create_direct_job("items", "src", "dst", "items")
    worker = fleet.processes["worker1"]
    fleet.wait_for("worker1 ready", lambda: " ready." in fleet.log("worker1"), timeout=120)
    # given a worker whose pool process is frozen: it receives a run but cannot claim it
    pids = [int(pid) for pid in children(worker.pid).split()]
    assert pids
    for child in pids:
        os.kill(child, signal.SIGSTOP)
    assert fleet.post(f"/job/start?guid={job}").text == "OK"
    broker = redis.Redis.from_url(fleet.env["CELERY_BROKER_URL"])
    queue = fleet.env["CELERY_TASK_DEFAULT_QUEUE"]
    fleet.wait_for("the worker receiving the run", lambda: broker.llen(queue) == 0)
    assert fleet.query("SELECT status FROM jobs_execution WHERE job_guid = %s", job) == [
        ("pending",)
    ]
    # when the whole worker is killed, and another worker starts
    os.killpg(worker.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    fleet.start_worker("worker2")
    # (a loaded machine takes a minute or more to start a worker: not the gateway's delay)
    fleet.wait_for("worker2 ready", lambda: " ready." in fleet.log("worker2"), timeout=240)
    ready = time.monotonic() - killed_at
    # then the run is delivered again to the new worker and finishes, the target equal
    started = fleet.wait_for(
        "the run started by the new worker",
        lambda: fleet.query(
            "SELECT guid FROM jobs_execution WHERE job_guid = %s AND status <> 'pending'", job
        ),
        timeout=VISIBILITY_SECONDS + RESTORE_SECONDS + 120,
    )
    resumed = time.monotonic() - killed_at
    status, _, error = fleet.wait_for(
        "the run finishing", lambda: fleet.finished(started[0][0]), timeout=180
    )
    assert status == "succeeded", error
    assert table_digest(target) == table_digest(source)
    assert resumed < max(ready, VISIBILITY_SECONDS) + RESTORE_SECONDS + 60, (resumed, ready)
    print(
        f"\nworker killed holding a run it had not claimed: started elsewhere {resumed:.1f} s "
        f"after the kill (visibility timeout {VISIBILITY_SECONDS} s, sweep every "
        f"{RESTORE_SECONDS} s, the new worker's start-up included)"
    )

"""The broker connection cut (Redis cannot be restarted here): web, workers and scheduler reach
Redis through a TCP proxy the test controls, which drops every connection and refuses new
ones for a few seconds. Afterwards the web queues again and the workers run what it queues."""

from __future__ import annotations

import time

import pytest

from tests import services
from tests.faults.conftest import Fleet, TcpProxy, start_fleet, table_digest

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

CUT_SECONDS = 4.0


def _reader_runs(fleet: Fleet, job: str) -> list[tuple[str, str, str, bool]]:
    """(guid, status, error, finished) of each reader run of `job`, oldest first."""
    return fleet.query(
        "SELECT guid, status, error_message, finished_at IS NOT NULL FROM jobs_execution "
        "WHERE job_guid = %s ORDER BY id",
        job,
    )


def _finished_runs(fleet: Fleet, job: str, count: int) -> list[tuple[str, str, str, bool]]:
    runs = _reader_runs(fleet, job)
    return runs if len(runs) >= count and all(run[3] for run in runs) else []


def test_workers_and_web_recover_from_a_broker_cut(
    fleet: Fleet, source_and_target: tuple[str, str]
) -> None:
    source, target = source_and_target
    services.require("Redis", services.REDIS_HOST, services.REDIS_PORT)
    with TcpProxy(services.REDIS_HOST, services.REDIS_PORT) as proxy:
        behind = f"redis://127.0.0.1:{proxy.port}/0"
        start_fleet(
            fleet,
            broker_env={"CELERY_BROKER_URL": behind, "CELERY_RESULT_BACKEND": behind},
            connections={"src": source, "dst": target},
        )
        job = fleet.create_direct_job("items", "src", "dst", "items")
        # given a first run through the proxy
        assert fleet.post(f"/job/start?guid={job}").text == "OK"
        (first,) = fleet.wait_for("the first run", lambda: _finished_runs(fleet, job, 1))
        assert first[1] == "succeeded", first[2]
        # when the broker connection is cut for a few seconds (a start meanwhile)
        proxy.cut()
        during = fleet.post(f"/job/start?guid={job}")
        time.sleep(CUT_SECONDS)
        proxy.restore()
        restored = time.monotonic()
        # then the start during the cut was refused, clearly, and left nothing pending
        assert during.status_code == 503, during.text
        assert during.json()["Error"].startswith("Cannot start 'items' now: the task queue")
        refused = _reader_runs(fleet, job)[-1]
        assert refused[1:] == ("failed", refused[2], True)
        assert refused[2].startswith("Could not queue the run: the broker is unreachable")
        # and a start after it is queued and runs
        fleet.wait_for(
            "the web answering after the cut",
            lambda: fleet.get("/version").status_code == 200,
            timeout=30,
        )
        answer = fleet.post(f"/job/start?guid={job}")
        assert answer.status_code == 200, answer.text
        runs = fleet.wait_for("the run after the cut", lambda: _finished_runs(fleet, job, 3))
        recovered = time.monotonic() - restored
    assert runs[-1][1] == "succeeded", runs[-1][2]
    assert table_digest(target) == table_digest(source)
    print(f"broker cut {CUT_SECONDS:g} s: a job started after it finished {recovered:.1f} s later")

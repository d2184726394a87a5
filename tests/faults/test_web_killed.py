"""The web killed mid-request: gunicorn's worker processes are SIGKILLed while POST /job
requests are in flight, at varied moments. No job is ever half made (a reader without its
direct writer, or a writer without its reader), and the web answers again at once (gunicorn's
master starts new workers); a job posted again afterwards is whole."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.faults.conftest import Fleet, start_fleet

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

ATTEMPTS = 4


def _web_workers(master: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return children


def _job(key: str) -> dict[str, object]:
    return {
        "JobReader": {
            "JobKey": key,
            "SqlRead": "SELECT 1 AS id",
            "Path": f"faults/{key}",
            "UpsertColumns": "id",
            "ConnectionString": "src",
            "Active": True,
            "JsonData": {"DirectWriter": f"__{key}"},
        },
        "JobWriter": {
            "JobKey": f"__{key}",
            "ConnectionString": "src",
            "TargetObject": "copy",
            "UpsertColumns": "id",
            "Active": True,
        },
    }


def _answers(fleet: Fleet) -> bool:
    """The web answers again, its new workers warmed (a first request loads the views)."""
    try:
        return all(fleet.get("/jobs/summary").status_code == 200 for _ in range(4))
    except requests.RequestException:
        return False


def _half_made(fleet: Fleet) -> list[tuple[str, ...]]:
    return fleet.query(
        "SELECT r.job_key FROM jobs_job r WHERE r.kind = 'reader' AND r.job_key LIKE 'web%%' "
        "AND NOT EXISTS (SELECT 1 FROM jobs_job w WHERE w.id = r.direct_writer_id) "
        "UNION ALL SELECT w.job_key FROM jobs_job w WHERE w.kind = 'writer' "
        "AND w.job_key LIKE '\\_\\_web%%' AND NOT EXISTS "
        "(SELECT 1 FROM jobs_job r WHERE r.direct_writer_id = w.id)"
    )


@pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="finds gunicorn's workers in /proc"
)
def test_web_killed_mid_request_leaves_no_half_made_job(fleet: Fleet) -> None:
    # the jobs are only made, never run: any reachable connection will do
    start_fleet(fleet, workers=1, connections={"src": fleet.database})
    master = fleet.processes["web"].pid
    # how long a POST /job takes here, to spread the kills over before, during and after it
    assert _answers(fleet)
    assert fleet.post("/job", json=_job("probe")).status_code == 200
    began = time.monotonic()
    assert fleet.post("/job", json=_job("probe2")).status_code == 200
    latency = time.monotonic() - began
    outcomes: list[str] = []
    for attempt in range(ATTEMPTS):
        key = f"web{attempt}"
        answers: list[int | str] = []

        def post(key: str = key, answers: list[int | str] = answers) -> None:
            try:
                answers.append(fleet.post("/job", json=_job(key)).status_code)
            except requests.RequestException as exc:
                answers.append(type(exc).__name__)

        sender = threading.Thread(target=post)
        sender.start()
        # when the web's workers die at a varied moment of the request
        time.sleep(latency * 1.5 * attempt / ATTEMPTS)
        for pid in _web_workers(master):
            os.kill(pid, signal.SIGKILL)
        sender.join(60)
        made = fleet.query(
            "SELECT count(*) FROM jobs_job WHERE job_key IN (%s, %s)", key, f"__{key}"
        )
        outcomes.append(f"{answers[0] if answers else 'no answer'}:{made[0][0]}")
        # then the job is whole or absent
        assert _half_made(fleet) == [], outcomes
        fleet.wait_for("the web answering again", lambda: _answers(fleet), timeout=60)
    # and every job posted again afterwards is whole (a refused duplicate key is whole too)
    for attempt in range(ATTEMPTS):
        again = fleet.post("/job", json=_job(f"web{attempt}"))
        assert again.status_code in (200, 400, 409), again.text
    assert _half_made(fleet) == []
    readers = fleet.query(
        "SELECT count(*) FROM jobs_job WHERE kind = 'reader' AND job_key LIKE 'web%%'"
    )
    assert readers == [(ATTEMPTS,)]
    print(
        f"\nweb SIGKILL mid-request, POST /job {latency * 1000:.0f} ms, {ATTEMPTS} attempts "
        f"(answer:job rows made): {outcomes}"
    )

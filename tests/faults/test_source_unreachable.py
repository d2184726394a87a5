"""The source database becomes unreachable while a job reads it (its connection cut by a TCP
proxy): the run fails with the source's own message, nothing half-applied stays in the
target, and the next run, with the source back, makes the target equal to the source."""

from __future__ import annotations

import psycopg
import pytest

from tests import services
from tests.faults.conftest import Fleet, TcpProxy, conninfo, start_fleet, table_digest

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _runs(fleet: Fleet, job: str) -> list[tuple[str, str, int, bool]]:
    return fleet.query(
        "SELECT status, error_message, record_count, finished_at IS NOT NULL "
        "FROM jobs_execution WHERE job_guid = %s ORDER BY id",
        job,
    )


def _reading(fleet: Fleet, job: str) -> bool:
    # Rows are flowing: the direct writer has applied some (in its open transaction).
    return bool(
        fleet.query(
            "SELECT 1 FROM jobs_execution WHERE listener_type = 'writer' AND status = 'running' "
            "AND record_count > 0 AND guid IN (SELECT guid FROM jobs_execution "
            "WHERE job_guid = %s)",
            job,
        )
    )


def test_a_source_cut_mid_read_fails_the_run_and_the_next_run_is_equal(
    fleet: Fleet, source_and_target: tuple[str, str]
) -> None:
    source, target = source_and_target
    # Rows wide enough that the read cannot be over before the cut: a first load reads by COPY,
    # and 100,000 narrow rows (2.5 MB) fit in the sockets' buffers at once.
    with psycopg.connect(conninfo(source), autocommit=True) as db:
        db.execute("UPDATE items SET name = name || repeat('x', 300)")
    with TcpProxy(services.POSTGRES_HOST, services.POSTGRES_PORT) as proxy:
        host = f"@{services.POSTGRES_HOST}:{services.POSTGRES_PORT}/"
        behind = source.replace(host, f"@127.0.0.1:{proxy.port}/")
        start_fleet(fleet, connections={"src": behind, "dst": target})
        job = fleet.create_direct_job("items", "src", "dst", "items")
        # when the job reads and the source goes away mid-read
        assert fleet.post(f"/job/start?guid={job}").text == "OK"
        fleet.wait_for("rows flowing", lambda: _reading(fleet, job))
        proxy.cut()
        (status, error, _, _), *_ = fleet.wait_for(
            "the run failing",
            lambda: [run for run in _runs(fleet, job) if run[3]],
            timeout=60,
        )
        # then it failed with the source's message, and the target kept nothing of it
        assert status == "failed"
        assert "server closed the connection" in error or "consuming input failed" in error, error
        assert table_digest(target)[0] == 0
        # and with the source back, the next run makes the target equal to the source
        proxy.restore()
        assert fleet.post(f"/job/start?guid={job}").text == "OK"
        runs = fleet.wait_for(
            "the next run",
            lambda: (r := _runs(fleet, job)) and len(r) == 2 and r[1][3] and r,
            timeout=120,
        )
    assert runs[1][0] == "succeeded", runs
    assert table_digest(target) == table_digest(source)

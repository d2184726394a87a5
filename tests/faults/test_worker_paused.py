"""A worker frozen (SIGSTOP: a VM paused, a long swap) while its writer applies, past its lease:
the run is taken over, and when the frozen worker resumes (SIGCONT) it writes nothing more —
its open transaction is rolled back, the target is refused its commit — while the new owner
finishes the run with the target equal to the source."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from tests.faults.conftest import LEASE_SECONDS, Fleet, conninfo, start_fleet, table_digest

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _count_commits(target: str) -> None:
    """Record, per statement writing `items`, the transaction it ran in: only committed
    transactions leave rows, so the distinct ids are the applies that reached the target."""
    with psycopg.connect(conninfo(target), autocommit=True) as db:
        db.execute("CREATE TABLE item_writes (txid bigint)")
        db.execute(
            "CREATE FUNCTION note_write() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO item_writes VALUES (txid_current()); RETURN NULL; END $$"
        )
        db.execute(
            "CREATE TRIGGER note_write AFTER INSERT OR UPDATE OR DELETE ON items "
            "FOR EACH STATEMENT EXECUTE FUNCTION note_write()"
        )


def _query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(conninfo(url), autocommit=True) as db:
        exists = db.execute("SELECT to_regclass('_datazen_fence')").fetchone()
        if "_datazen_fence" in sql and (not exists or exists[0] is None):
            return []
        return db.execute(sql).fetchall()


def test_a_worker_paused_past_its_lease_writes_nothing_after_resuming(
    fleet: Fleet, source_and_target: tuple[str, str]
) -> None:
    source, target = source_and_target
    _count_commits(target)
    start_fleet(fleet, connections={"src": source, "dst": target})
    job = fleet.create_direct_job("items", "src", "dst", "items")
    # given the job's writer applying in one worker
    assert fleet.post(f"/job/start?guid={job}").text == "OK"
    run = fleet.wait_for(
        "the run started",
        lambda: fleet.query("SELECT guid FROM jobs_execution WHERE job_guid = %s", job),
    )[0][0]
    worker = fleet.wait_for(
        "the writer applying",
        lambda: fleet.query(
            "SELECT worker FROM jobs_execution WHERE guid = %s AND listener_type = 'writer' "
            "AND status = 'running' AND record_count > 0",
            run,
        ),
    )[0][0]
    pid = int(worker.rsplit(":", 1)[1])
    owner = next(
        name for name, p in fleet.processes.items() if name.startswith("worker") and (
            p.pid == pid or str(pid) in _children(p.pid)
        )
    )  # fmt: skip
    # when the whole worker is frozen past its lease…
    os.killpg(fleet.processes[owner].pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    try:
        # (the source changes meanwhile: the frozen worker holds rows read before, so a commit
        # of its own would be a second transaction, beside its successor's)
        with psycopg.connect(conninfo(source), autocommit=True) as db:
            db.execute("UPDATE items SET qty = qty + 1000 WHERE id % 100 = 0")
        fleet.wait_for(
            "the run taken over",
            lambda: fleet.query(
                "SELECT 1 FROM jobs_execution WHERE guid = %s AND listener_type = 'reader' "
                "AND status = 'running' AND worker <> %s",
                run,
                worker,
            ),
            timeout=60,
        )
        taken_over = time.monotonic() - paused_at
        # (the new owner goes as far as it can: it claims the target's fence before it applies,
        # or waits for the frozen worker's locks on the stage and the writer's state row)
        time.sleep(LEASE_SECONDS)
    finally:
        # …and then resumes
        os.killpg(fleet.processes[owner].pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    # then the new owner finishes the run, the target equals the source…
    status, error = fleet.wait_for(
        "the run finishing",
        lambda: fleet.query(
            "SELECT status, error_message FROM jobs_execution WHERE guid = %s "
            "AND listener_type = 'reader' AND finished_at IS NOT NULL",
            run,
        ),
        timeout=180,
    )[0]
    finished = time.monotonic() - resumed_at
    assert status == "succeeded", error
    assert table_digest(target) == table_digest(source)
    # …written by one transaction, the new owner's (it read the changed rows): the resumed
    # worker committed nothing
    assert _query(target, "SELECT count(DISTINCT txid) FROM item_writes") == [(1,)]
    fleet.wait_for("the resumed worker saying so", lambda: "lost its lease" in fleet.log(owner))
    print(
        f"\nworker SIGSTOPped mid-apply: taken over {taken_over:.1f} s after the pause "
        f"(lease {LEASE_SECONDS:g} s); after SIGCONT the run finished in {finished:.1f} s, "
        "the resumed worker wrote nothing"
    )


def _children(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return handle.read()
    except OSError:
        return ""

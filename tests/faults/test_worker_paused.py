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

from tests.faults.conftest import LEASE_SECONDS, Fleet, conninfo, table_digest

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
    # given the job's writer applying in one worker
    _, run, worker, _ = fleet.start_applying(source, target)
    owner = fleet.worker_process(worker)
    # when the whole worker is frozen past its lease…
    os.killpg(fleet.processes[owner].pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    try:
        # (the source changes meanwhile: the frozen worker holds rows read before, so a commit
        # of its own would be a second transaction, beside its successor's)
        with psycopg.connect(conninfo(source), autocommit=True) as db:
            db.execute("UPDATE items SET qty = qty + 1000 WHERE id % 100 = 0")
        fleet.taken_over(run, worker)
        taken_over = time.monotonic() - paused_at
        # (the new owner goes as far as it can: it reads into a stage of its own, claims the
        # target's fence, then waits for the frozen worker's locks in the target: the rows of
        # its open transaction and the writer's state row)
        time.sleep(LEASE_SECONDS)
    finally:
        # …and then resumes
        os.killpg(fleet.processes[owner].pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    # then the new owner finishes the run, the target equals the source…
    status, _, error = fleet.wait_for("the run finishing", lambda: fleet.finished(run), timeout=180)
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

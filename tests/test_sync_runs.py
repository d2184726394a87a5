"""Sync jobs as the workers run them: through Celery, stopped mid-run, killed mid-apply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from sqlalchemy.exc import OperationalError

from jobs import services
from jobs.models import Execution, ExecutionStatus, Job, JobKind, new_guid
from jobs.systems.db.url import dispose_engines
from tests.syncdb import direct_job, execute, rows, run

ROOT = Path(__file__).resolve().parent.parent


def seed(url: str, count: int) -> None:
    execute(url, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
    execute(
        url,
        "INSERT INTO items VALUES (:id, :name, :qty)",
        params=[{"id": i, "name": f"item {i}", "qty": i % 97} for i in range(count)],
    )


def wait_for(predicate, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def table_or_nothing(url: str, table: str) -> list[tuple]:
    try:
        return rows(url, table)
    except OperationalError:  # no such table: nothing was created either
        return []


def finished(execution: Execution) -> bool:
    execution.refresh_from_db()
    return execution.is_finished


def test_start_job_runs_the_direct_job_in_the_worker(
    embedded_worker: object, sqlite_url: str, tmp_path: Path
) -> None:
    # given
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 500)
    job = direct_job(sqlite_url, target, sql="SELECT * FROM items", target="items")
    # when
    execution = services.start_job(job)
    assert execution is not None
    wait_for(lambda: finished(execution))
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert execution.records_direct_written == 500
    assert rows(target, "items") == rows(sqlite_url, "items")
    job.refresh_from_db()
    assert job.status == "ready"


def test_stop_mid_run_leaves_the_target_and_pointers_unmoved(
    embedded_worker: object, sqlite_url: str, tmp_path: Path
) -> None:
    # given: a reader slow enough to be stopped while it reads
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 60_000)
    job = direct_job(
        sqlite_url,
        target,
        sql="SELECT items.*, (SELECT count(*) FROM items b"
        " WHERE b.id < 500 AND b.qty = items.qty) AS slow FROM items",
        target="items",
    )
    execution = services.start_job(job)
    assert execution is not None
    wait_for(lambda: Execution.objects.get(pk=execution.pk).records_available > 0)
    # when
    started = time.monotonic()
    services.stop_job(job)
    wait_for(lambda: finished(execution), seconds=30)
    # then
    assert time.monotonic() - started < 8  # a poll every 0.5 s, a check per batch
    assert execution.status == ExecutionStatus.CANCELLED
    assert execution.package_file == ""
    folder = Path(settings.DATA_DIR) / "drive_c" / "tmp" / "datasync_reader"
    assert not list(folder.glob(f"{job.job_key}_*"))  # no change log, not even a partial one
    # SQLite to SQLite: the writer would have run after the reader, so it never started
    assert not Execution.objects.filter(guid=execution.guid, listener_type="writer").exists()
    assert table_or_nothing(target, "items") == []
    # and the next run sends everything, as if the stopped run never happened
    again = services.start_job(job)
    assert again is not None
    wait_for(lambda: finished(again), seconds=120)
    assert again.status == ExecutionStatus.SUCCEEDED, again.error_message
    assert again.record_count == 60_000
    assert [row[:3] for row in rows(target, "items")] == rows(sqlite_url, "items")


def test_stop_while_the_direct_writer_applies_alongside_rolls_both_back(
    embedded_worker: object, postgres_url: str, tmp_path: Path
) -> None:
    # given: a PostgreSQL reader (its writer applies batches while it reads) that is slow
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    job = direct_job(
        postgres_url,
        target,
        sql="SELECT i AS id, CASE WHEN i % 1000 = 0 THEN pg_sleep(0.1)::text END AS pause"
        " FROM generate_series(1, 60000) AS i",
        target="items",
        options={"BatchCount": 500},
    )
    execution = services.start_job(job)
    assert execution is not None
    wait_for(lambda: Execution.objects.get(pk=execution.pk).records_available > 0)
    writer = Execution.objects.get(guid=execution.guid, listener_type="writer")
    # when
    services.stop_job(job)
    wait_for(lambda: finished(execution), seconds=30)
    # then: both are cancelled and the target has none of the rows already handed over
    writer.refresh_from_db()
    assert execution.status == ExecutionStatus.CANCELLED
    assert writer.status == ExecutionStatus.CANCELLED
    assert table_or_nothing(target, "items") == []
    assert execution.package_file == ""
    dispose_engines()


CHILD = """
import os, sys, time
import django
django.setup()
from jobs.systems.db.url import create_db_engine
from jobs.systems.db.writer import ApplyHooks, WriterSettings, apply_change_log
from pathlib import Path

def after_chunk(written):
    print("chunk", written, flush=True)
    time.sleep(0.3)

engine = create_db_engine("", sys.argv[1])
settings = WriterSettings(target_object="items", writer_guid=sys.argv[2], keys=["id"],
                          batch_count=1000)
apply_change_log(engine, Path(sys.argv[3]), sys.argv[4], settings,
                 ApplyHooks(after_chunk=after_chunk))
print("finished", flush=True)
"""


@pytest.mark.django_db
@pytest.mark.parametrize("target_kind", ["sqlite", "postgres"])
def test_worker_killed_mid_apply_then_a_clean_rerun(
    target_kind: str, sqlite_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # given: a reader-only job has written a change log, a writer is applying it
    if target_kind == "postgres":
        target = request.getfixturevalue("postgres_url")
    else:
        target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 30_000)
    key = f"kill_{new_guid()[:8]}"
    reader = Job.objects.create(
        kind=JobKind.READER,
        job_key=key,
        definition={
            "JobKey": key,
            "SqlRead": "SELECT * FROM items",
            "UpsertColumns": "id",
            "Path": "C:\\tmp\\kill",
            "ConnectionString": sqlite_url,
        },
    )
    writer = Job.objects.create(
        kind=JobKind.WRITER,
        job_key=f"__{key}",
        source=reader,
        definition={
            "JobKey": f"__{key}",
            "SourceJobKey": key,
            "Path": "C:\\tmp\\kill",
            "UpsertColumns": "id",
            "ConnectionString": target,
            "TargetObject": "items",
            "Options": {"BatchCount": 1000},
        },
    )
    read = run(reader)
    assert read.status == ExecutionStatus.SUCCEEDED, read.error_message
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings_test"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, target, writer.guid, read.package_file, read.execution_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("chunk"), line + child.stderr.read() if child.stderr else ""
    # when: the worker dies mid-apply
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    dispose_engines()
    # then: nothing of that change log is in the target
    assert rows(target, "items") == []
    # and a clean re-run applies it exactly once
    again = run(writer)
    assert again.status == ExecutionStatus.SUCCEEDED, again.error_message
    assert again.record_count == 30_000
    assert rows(target, "items") == rows(sqlite_url, "items")
    writer.refresh_from_db()
    assert writer.last_execution_id == read.execution_id
    # a further run finds nothing pending and changes nothing
    assert run(writer).record_count == 0
    assert rows(target, "items") == rows(sqlite_url, "items")
    dispose_engines()

"""`manage.py runjob` and `manage.py jobs`: a job run from a script, its outcome as exit code."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Execution, ExecutionStatus, Job
from tests.syncdb import direct_job, execute, rows

pytestmark = pytest.mark.django_db(transaction=True)


def seed(url: str, count: int) -> None:
    execute(url, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    execute(
        url,
        "INSERT INTO items VALUES (:id, :name)",
        params=[{"id": i, "name": f"item {i}"} for i in range(count)],
    )


def command(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command(*args, stdout=out, stderr=StringIO())
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_runjob_follow_runs_the_job_and_exits_0(sqlite_url: str, tmp_path: Path) -> None:
    # given a direct job copying 300 rows
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 300)
    job = direct_job(sqlite_url, target, sql="SELECT * FROM items", target="items")
    # when
    code, out = command("runjob", job.job_key, "--follow")
    # then
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"Started {job.job_key}: execution ")
    assert any("rows/s" in line and f"{job.job_key} " in line for line in lines), out
    assert f"{job.job_key} succeeded in " in lines[-1]
    assert "300 written" in lines[-1]
    assert rows(target, "items") == rows(sqlite_url, "items")
    run = Execution.objects.get(job=job)
    assert run.status == ExecutionStatus.SUCCEEDED and run.requested_by == "cli:runjob"


def test_runjob_exits_non_zero_with_the_error_when_the_run_fails(
    sqlite_url: str, tmp_path: Path
) -> None:
    # given a job whose SQL names a table that is not there
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 1)
    job = direct_job(sqlite_url, target, sql="SELECT * FROM missing_table", target="items")
    # when (embedded: it waits for the outcome even without --follow)
    code, out = command("runjob", job.job_key)
    # then
    assert code == 1
    assert f"{job.job_key} failed" in out and "missing_table" in out
    assert "rows/s" not in out  # no progress without --follow


def test_runjob_refuses_unknown_and_disabled_jobs(sqlite_url: str, tmp_path: Path) -> None:
    job = direct_job(sqlite_url, sqlite_url, sql="SELECT 1 AS id", target="items")
    with pytest.raises(CommandError, match=f"No job has the key 'nope'. Jobs: .*{job.job_key}"):
        command("runjob", "nope")
    Job.objects.filter(pk=job.pk).update(active=False)
    with pytest.raises(CommandError, match="disabled"):
        command("runjob", job.job_key)


def test_jobs_lists_each_job_with_its_last_outcome(sqlite_url: str, tmp_path: Path) -> None:
    # given one job that ran and one that never did
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    seed(sqlite_url, 5)
    ran = direct_job(sqlite_url, target, sql="SELECT * FROM items", target="items")
    idle = direct_job(sqlite_url, target, sql="SELECT * FROM items", target="other")
    Job.objects.filter(pk=idle.pk).update(cron_schedule="0 0 * * * ?")
    assert command("runjob", ran.job_key)[0] == 0
    # when
    code, table = command("jobs")
    _, listed = command("jobs", "--json")
    # then
    assert code == 0
    header, *lines = table.splitlines()
    assert header.split() == [
        "KEY",
        "KIND",
        "ACTIVE",
        "SCHEDULE",
        "LAST_RUN",
        "OUTCOME",
        "ROWS",
        "SECONDS",
    ]
    by_key = {line.split()[0]: line.split() for line in lines}
    assert by_key[ran.job_key][1:3] == ["direct", "True"]
    assert by_key[ran.job_key][-3:-1] == ["succeeded", "5"]
    assert by_key[idle.job_key][-4:] == ["-", "-", "-", "-"]
    assert "0 0 * * * ?" in table
    entries = {entry["key"]: entry for entry in json.loads(listed)}
    assert entries[ran.job_key]["outcome"] == "succeeded" and entries[ran.job_key]["rows"] == 5
    assert entries[idle.job_key]["outcome"] is None

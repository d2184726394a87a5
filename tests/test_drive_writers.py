"""Drive writers: a SQLite table → files per change log in a folder, and back again."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
from pathlib import Path
from typing import IO

import pyarrow.parquet as pq
import pytest
import zstandard

from jobs.models import ExecutionStatus, Job
from tests.drivefiles import FILMS, drive_connection
from tests.syncdb import direct_job, execute, rows, run, writer_execution

pytestmark = pytest.mark.django_db


def seed(url: str) -> None:
    execute(
        url,
        "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT, year INTEGER, rate REAL,"
        " added TEXT)",
    )
    execute(
        url,
        "INSERT INTO films VALUES (:id, :title, :year, :rate, :added)",
        params=[
            {"id": i, "title": t, "year": y, "rate": r, "added": f"2024-01-0{i} 10:00:00"}
            for i, t, y, r in FILMS
        ],
    )


def read_back(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            return [dict(row) for row in csv.DictReader(handle)]
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    return pq.read_table(path).to_pylist()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_database_table_becomes_a_file_per_change_log(
    drive_root: Path, sqlite_url: str, fmt: str
) -> None:
    # given a SQLite table and a drive target writing films.<fmt> into out/
    seed(sqlite_url)
    key = drive_connection({"service": "local", "path": "exports"})
    job = direct_job(sqlite_url, key, sql="SELECT * FROM films", target=f"out/films.{fmt}")
    # when
    execution = run(job)
    # then one file named after the ExecutionId holds every row, value for value
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    folder = drive_root / "exports" / "out"
    assert files(folder) == [f"films_{execution.execution_id}.{fmt}"]
    written = read_back(folder / files(folder)[0])
    source = rows(sqlite_url, "films")
    assert [
        (int(r["id"]), r["title"], int(r["year"]), float(r["rate"]), str(r["added"]))
        for r in written
    ] == [(*row[:4], str(row[4])) for row in source]
    assert writer_execution(execution).record_count == len(FILMS)


def test_changes_and_deletes_go_to_their_own_files_and_a_reapplied_log_adds_none(
    drive_root: Path, sqlite_url: str
) -> None:
    # given a first run written out
    seed(sqlite_url)
    key = drive_connection({"service": "local", "path": "exports"})
    job = direct_job(
        sqlite_url,
        key,
        sql="SELECT id, title, year FROM films",
        target="films/",
        propagate_delete=True,
        reader={"JsonData": {"KeepChangedLogFiles": True}},
    )
    first = run(job)
    assert first.status == ExecutionStatus.SUCCEEDED, first.error_message
    # when a row changes and another is deleted
    execute(sqlite_url, "UPDATE films SET title = 'Changed' WHERE id = 2")
    execute(sqlite_url, "DELETE FROM films WHERE id = 5")
    second = run(job)
    # then the second change log becomes an upsert file and a delete file
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    folder = drive_root / "exports" / "films"
    stem = job.job_key
    assert files(folder) == sorted(
        [
            f"{stem}_{first.execution_id}.csv",
            f"{stem}_{second.execution_id}.csv",
            f"{stem}_{second.execution_id}.deletes.csv",
        ]
    )
    assert read_back(folder / f"{stem}_{second.execution_id}.csv") == [
        {"id": "2", "title": "Changed", "year": "2006"}
    ]
    assert read_back(folder / f"{stem}_{second.execution_id}.deletes.csv") == [{"id": "5"}]
    # and when the writer applies its change logs again from the start (its position lost)
    writer = Job.objects.get(pk=job.direct_writer_id)
    for state in (folder / ".datazen").iterdir():
        state.unlink()
    Job.objects.filter(pk=writer.pk).update(last_execution_id="")
    again = run(writer)
    # then the same names are written again: no second file for any change log
    assert again.status == ExecutionStatus.SUCCEEDED, again.error_message
    assert again.record_count == len(FILMS) + 1
    assert len(files(folder)) == 3
    assert read_back(folder / f"{stem}_{second.execution_id}.deletes.csv") == [{"id": "5"}]


def test_a_writer_run_with_nothing_new_writes_nothing(drive_root: Path, sqlite_url: str) -> None:
    seed(sqlite_url)
    key = drive_connection({"service": "local", "path": "exports"})
    job = direct_job(sqlite_url, key, sql="SELECT * FROM films", target="again/films.parquet")
    assert run(job).status == ExecutionStatus.SUCCEEDED
    second = run(job)
    assert second.status == ExecutionStatus.SUCCEEDED
    assert len(files(drive_root / "exports" / "again")) == 1


def test_drive_to_database_and_back_compares_row_by_row(
    drive_root: Path, sqlite_url: str, tmp_path: Path
) -> None:
    # given films as a Parquet file, read into SQLite by one direct job ...
    seed(sqlite_url)
    export = drive_connection({"service": "local", "path": "roundtrip"})
    out = run(direct_job(sqlite_url, export, sql="SELECT * FROM films", target="films.parquet"))
    assert out.status == ExecutionStatus.SUCCEEDED, out.error_message
    copy_url = f"sqlite:///{tmp_path / 'copy.sqlite3'}"
    # ... when a drive reader reads the written file into another database
    back = run(
        direct_job(
            export,
            copy_url,
            sql="",
            target="films",
            json_data={"DriveSourceSettings": {"DriveFilePattern": "films_*.parquet"}},
        )
    )
    # then the copy equals the source, row by row
    assert back.status == ExecutionStatus.SUCCEEDED, back.error_message
    assert rows(copy_url, "films") == rows(sqlite_url, "films")


def _open_text(path: Path) -> IO[str]:
    """A written compressed file as text, decompressed by its extension."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(raw)
    elif path.suffix == ".bz2":
        data = bz2.decompress(raw)
    elif path.suffix == ".xz":
        data = lzma.decompress(raw)
    else:
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    return io.StringIO(data.decode(), newline="")


@pytest.mark.parametrize(
    "target",
    ["out/films.csv.gz", "out/films.jsonl.bz2", "out/films.csv.xz", "out/films.jsonl.zst"],
)
def test_a_compressed_target_writes_files_compressed_by_their_extension(
    drive_root: Path, sqlite_url: str, target: str
) -> None:
    # given a drive target named with a compression extension after the format's
    seed(sqlite_url)
    key = drive_connection({"service": "local", "path": "exports"})
    job = direct_job(sqlite_url, key, sql="SELECT id, title FROM films", target=target)
    # when
    execution = run(job)
    # then the file carries both extensions and decompresses to every row
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    folder = drive_root / "exports" / "out"
    extensions = target.split(".", 1)[1]
    assert files(folder) == [f"films_{execution.execution_id}.{extensions}"]
    with _open_text(folder / files(folder)[0]) as handle:
        text = handle.read()
    if ".csv" in target:
        written = [(int(r["id"]), r["title"]) for r in csv.DictReader(io.StringIO(text))]
    else:
        written = [(r["id"], r["title"]) for r in map(json.loads, text.splitlines())]
    assert written == [(film[0], film[1]) for film in FILMS]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("out/films.parquet.gz", "Parquet files compress their columns themselves"),
        ("out/films.gz", "name the format before the compression"),
    ],
)
def test_a_compressed_target_the_writer_cannot_honour_is_refused_by_name(
    drive_root: Path, sqlite_url: str, target: str, message: str
) -> None:
    seed(sqlite_url)
    key = drive_connection({"service": "local", "path": "exports"})
    job = direct_job(sqlite_url, key, sql="SELECT * FROM films", target=target)
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert message in writer_execution(execution).error_message

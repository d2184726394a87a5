"""Drive → SQLite: a CSV file (and the same rows as Parquet) through the real engine vs a
hand-written pyarrow read + executemany loop, in the same run.

Prints JSON per format: both times, their ratio (target ≤ 1.5) and the engine child's peak RSS
(target < 300 MB). The engine runs a direct job (full sync with upsert keys: change detection,
change log, stage store) in a child process, like bench/sync_full.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLUMNS = ["id", "qty", "stock", "price", "weight", "code", "name", "note", "day", "flag"]
SCHEMA = (
    "CREATE TABLE dst (id INTEGER PRIMARY KEY, qty INTEGER, stock INTEGER, price REAL, "
    "weight REAL, code TEXT, name TEXT, note TEXT, day TEXT, flag INTEGER)"
)


def create_files(folder: Path, rows: int, seed: int = 7) -> None:
    """films.csv and films.parquet with the same rows, written a chunk at a time."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    csv_writer = parquet_writer = None
    chunk = 100_000
    for start in range(1, rows + 1, chunk):
        ids = range(start, min(rows + 1, start + chunk))
        table = pa.table(
            {
                "id": list(ids),
                "qty": [rng.randrange(1000) for _ in ids],
                "stock": [rng.randrange(1_000_000) for _ in ids],
                "price": [round(rng.random() * 1000, 2) for _ in ids],
                "weight": [rng.random() for _ in ids],
                "code": [f"C{i:09d}" for i in ids],
                "name": [f"name {rng.randrange(10**6)} é" for _ in ids],
                "note": ["x" * rng.randrange(10, 40) for _ in ids],
                "day": [f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}" for _ in ids],
                "flag": [rng.randrange(2) for _ in ids],
            }
        )
        if csv_writer is None:
            (folder / "csv").mkdir(exist_ok=True)
            (folder / "parquet").mkdir(exist_ok=True)
            csv_writer = pacsv.CSVWriter(str(folder / "csv" / "films.csv"), table.schema)
            parquet_writer = pq.ParquetWriter(
                str(folder / "parquet" / "films.parquet"), table.schema
            )
        assert csv_writer is not None and parquet_writer is not None
        csv_writer.write_table(table)
        parquet_writer.write_table(table, row_group_size=chunk)
    assert csv_writer is not None and parquet_writer is not None
    csv_writer.close()
    parquet_writer.close()


def baseline(source: Path, target: Path) -> int:
    """What a developer would hand-write: pyarrow batches → tuples → executemany upserts."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if source.suffix == ".csv":
        batches: Any = pacsv.open_csv(str(source))
    else:
        batches = pq.ParquetFile(str(source)).iter_batches(batch_size=10_000)
    db = sqlite3.connect(target)
    db.execute(SCHEMA)
    upsert = (
        f"INSERT INTO dst ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
        "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
    )
    total = 0
    db.execute("BEGIN")
    for batch in batches:
        columns = [column.to_pylist() for column in batch.columns]
        # sqlite3 has no adapter for dates by default in 3.12+: send ISO text, as the engine does
        day = COLUMNS.index("day")
        columns[day] = [None if v is None else str(v) for v in columns[day]]
        rows = list(zip(*columns, strict=True))
        db.executemany(upsert, rows)
        total += len(rows)
    db.commit()
    db.close()
    return total


def checksum(path: Path) -> list:
    db = sqlite3.connect(path)
    try:
        return list(
            db.execute(
                "SELECT count(*), sum(id), sum(qty), total(price), sum(length(name)), "
                "sum(length(note)), max(day), sum(flag) FROM dst"
            ).fetchone()
        )
    finally:
        db.close()


def run_engine(data_dir: Path, drive_root: Path, fmt: str, target: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_DRIVE_ROOT": str(drive_root),
            "DJANGO_SETTINGS_MODULE": "gateway.settings",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
    )
    env.pop("DATABASE_URL", None)
    payload = json.dumps({"format": fmt, "folder": str(drive_root / fmt), "target": str(target)})
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "child", payload],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"engine child failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _child(payload: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from importlib import import_module

    from jobs import runner, services
    from jobs.models import ConnectionString, ConnectionType, Job, JobKind

    import_module("jobs.sync.run")  # a worker imports the engine once, before its first task
    spec = json.loads(payload)
    key = f"bench_drive_{spec['format']}"
    ConnectionString.objects.create(
        key=key,
        system="Local Path",
        connection_type=ConnectionType.DRIVE,
        value=json.dumps({"service": "local", "path": spec["folder"]}),
    )
    reader = Job.objects.create(
        kind=JobKind.READER,
        job_key=key,
        definition={
            "JobKey": key,
            "Path": "C:\\tmp\\bench",
            "UpsertColumns": "id",
            "ConnectionString": key,
            "SyncStrategy": "Full",
            "JsonData": {
                "KeepChangedLogFiles": False,
                "DriveSourceSettings": {"DriveFileFormat": spec["format"]},
            },
        },
    )
    writer = Job.objects.create(
        kind=JobKind.WRITER,
        job_key=f"__{key}",
        source=reader,
        definition={
            "JobKey": f"__{key}",
            "Path": "C:\\tmp\\bench",
            "UpsertColumns": "id",
            "ConnectionString": f"sqlite:///{spec['target']}",
            "SourceJobKey": key,
            "TargetObject": "dst",
            "Options": {"BatchCount": 10_000},
        },
    )
    reader.direct_writer = writer
    reader.save()
    execution = services.new_execution(reader)
    started = time.perf_counter()
    claimed = runner.claim(execution.pk)
    assert claimed is not None
    runner.run_claimed(claimed)
    seconds = time.perf_counter() - started
    claimed.refresh_from_db()
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "status": claimed.status,
                "error": claimed.error_message,
                "record_count": claimed.record_count,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="alternate runs; the best counts")
    parser.add_argument("--formats", default="csv,parquet")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-drive-") as tmp:
        folder = Path(tmp)
        drive_root = folder / "drive"
        create_files(drive_root, args.rows)
        for fmt in args.formats.split(","):
            source = drive_root / fmt / f"films.{fmt}"
            base_runs: list[float] = []
            engine_runs: list[dict] = []
            same = True
            for attempt in range(max(1, args.repeat)):
                started = time.perf_counter()
                baseline(source, folder / "baseline.sqlite3")
                base_runs.append(time.perf_counter() - started)
                expected = checksum(folder / "baseline.sqlite3")
                (folder / "baseline.sqlite3").unlink()
                target = folder / f"target-{fmt}-{attempt}.sqlite3"
                engine_runs.append(
                    run_engine(folder / f"data-{fmt}-{attempt}", drive_root, fmt, target)
                )
                same = same and checksum(target) == expected
                target.unlink()
            engine = min(engine_runs, key=lambda run: run["seconds"])
            results.append(
                {
                    "benchmark": "drive",
                    "format": fmt,
                    "rows": args.rows,
                    "file_mb": round(source.stat().st_size / 1e6, 1),
                    "baseline_seconds": round(min(base_runs), 3),
                    "engine_seconds": engine["seconds"],
                    "ratio": round(engine["seconds"] / min(base_runs), 2),
                    "ratio_target": 1.5,
                    "baseline_runs": [round(s, 3) for s in base_runs],
                    "engine_runs": [run["seconds"] for run in engine_runs],
                    "engine_peak_rss_mb": max(run["peak_rss_mb"] for run in engine_runs),
                    "rss_target_mb": 300,
                    "status": engine["status"],
                    "error": engine["error"],
                    "target_matches_baseline": same,
                }
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        _child(sys.argv[2])
    else:
        main()

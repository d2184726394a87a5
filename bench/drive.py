"""Drive → SQLite: a CSV file (and the same rows as Parquet) through the real engine vs a
hand-written pyarrow read + executemany loop, in the same run.

Prints a line per format with the ratio against its target, then JSON: both times (wall and
CPU), their ratio (target ≤ 1.5) and the engine child's peak RSS (target < 300 MB). The engine
runs a direct job (full sync with upsert keys: change detection, change log, stage store) in a
child process (bench/common.py), like bench/sync_full.py.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import compare, ratio_line, run_engine, timed_cpu

COLUMNS = ["id", "qty", "stock", "price", "weight", "code", "name", "note", "day", "flag"]
SCHEMA = (
    "CREATE TABLE dst (id INTEGER PRIMARY KEY, qty INTEGER, stock INTEGER, price REAL, "
    "weight REAL, code TEXT, name TEXT, note TEXT, day TEXT, flag INTEGER)"
)


def create_files(folder: Path, rows: int, seed: int = 7) -> None:
    """films.csv and films.parquet with the same rows, written a chunk at a time."""
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


def engine_job(drive_root: Path, fmt: str, target: Path) -> dict[str, Any]:
    key = f"bench_drive_{fmt}"
    return {
        "key": key,
        "source": key,
        "target": f"sqlite:///{target}",
        "target_table": "dst",
        "connections": [
            {
                "key": key,
                "system": "Local Path",
                "type": "Drive",
                "value": json.dumps({"service": "local", "path": str(drive_root / fmt)}),
            }
        ],
        "reader": {"JsonData": {"DriveSourceSettings": {"DriveFileFormat": fmt}}},
    }


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
            base_runs: list[tuple[float, float]] = []
            engine_runs: list[dict] = []
            same = True
            # The machine is shared: alternate baseline and engine runs, keep each one's best.
            for attempt in range(max(1, args.repeat)):
                wall, cpu, _ = timed_cpu(baseline, source, folder / "baseline.sqlite3")
                base_runs.append((wall, cpu))
                expected = checksum(folder / "baseline.sqlite3")
                (folder / "baseline.sqlite3").unlink()
                target = folder / f"target-{fmt}-{attempt}.sqlite3"
                engine_runs.append(
                    run_engine(
                        folder / f"data-{fmt}-{attempt}",
                        engine_job(drive_root, fmt, target),
                        env={"GATEWAY_DRIVE_ROOT": str(drive_root)},
                    )
                )
                succeeded = engine_runs[-1]["status"] == "succeeded"
                same = same and succeeded and checksum(target) == expected
                target.unlink(missing_ok=True)
            result = compare(
                "drive",
                base_runs,
                engine_runs,
                ratio_target=1.5,
                format=fmt,
                rows=args.rows,
                file_mb=round(source.stat().st_size / 1e6, 1),
            )
            result.update(rss_target_mb=300, target_matches_baseline=same)
            print(ratio_line(result), file=sys.stderr, flush=True)
            results.append(result)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

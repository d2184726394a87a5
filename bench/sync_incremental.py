"""Incremental runs of a direct job against the read floor, on SQLite, PostgreSQL and MariaDB.

Per dialect (source and target of the same kind): a first load, then a run after 1% of rows
updated, 0.1% deleted and 0.1% inserted, then a run with nothing changed. The target is
compared with the source row by row after each incremental run (deletes propagated exactly).

The yardstick is the *read floor*, measured in the same run: a bare loop reading the source's
rows through the same driver and batch size as the engine's reader, keeping none. Issue 20's
targets: changed run ≤ 1.5x the floor on every dialect; nothing changed ≤ 1x the floor on
PostgreSQL and MariaDB (rows hashed in the source, only keys and digests cross the wire) and
≤ 1.3x on SQLite. Peak RSS < 300 MB. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers
from bench.common import run_engine
from bench.sync_full import COLUMNS as SQLITE_COLUMNS
from bench.sync_full import create_source, make_row

TARGETS = {
    "sqlite": {"changed": 1.5, "unchanged": 1.3},
    "postgresql": {"changed": 1.5, "unchanged": 1.0},
    "mariadb": {"changed": 1.5, "unchanged": 1.0},
}


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


def mutate(path: Path, rows: int, seed: int = 11) -> dict[str, int]:
    """Change 1% of the rows, delete 0.1%, insert 0.1% new ones."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, rows + 1), rows // 100 + rows // 1000)
    changed, deleted = ids[: rows // 100], ids[rows // 100 :]
    db = sqlite3.connect(path)
    db.executemany(
        "UPDATE src SET qty = qty + 1, name = name || '*' WHERE id = ?", ((i,) for i in changed)
    )
    db.executemany("DELETE FROM src WHERE id = ?", ((i,) for i in deleted))
    db.executemany(
        "INSERT INTO src VALUES (?,?,?,?,?,?,?,?,?,?)",
        (make_row(i, rng) for i in range(rows + 1, rows + 1 + rows // 1000)),
    )
    db.commit()
    db.close()
    return {"updated": len(changed), "deleted": len(deleted), "inserted": rows // 1000}


def read_floor(path: Path) -> int:
    """Read every row as the engine's reader does (fetchmany of 10,000), keeping none."""
    db = sqlite3.connect(path)
    try:
        cursor = db.execute(f"SELECT {SQLITE_COLUMNS} FROM src")
        total = 0
        while rows := cursor.fetchmany(10_000):
            total += len(rows)
        return total
    finally:
        db.close()


def sqlite_rows(path: Path, table: str) -> Iterator[tuple]:
    db = sqlite3.connect(path)
    try:
        cursor = db.execute(f"SELECT {SQLITE_COLUMNS} FROM {table} ORDER BY id")
        while rows := cursor.fetchmany(20_000):
            yield from rows
    finally:
        db.close()


def measure(
    dialect: str,
    rows: int,
    data: Path,
    job: dict[str, Any],
    mutate_source: Callable[[], dict[str, int]],
    floor: Callable[[], Any],
    check: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    first = run_engine(data, job)
    changes = mutate_source()
    second = run_engine(data, job)
    after_changes = check()
    third = run_engine(data, job)
    after_nothing = check()
    floors = [timed_cpu(floor) for _ in range(3)]
    floor_seconds = min(wall for wall, _ in floors)
    floor_cpu = min(cpu for _, cpu in floors)
    runs = (first, second, third)
    return {
        "rows": rows,
        "changes": changes,
        "read_floor_seconds": round(floor_seconds, 3),
        # The machine is shared: process CPU (this process's for the floor, the engine child's
        # for the runs) is steadier than wall time, though blind to the database server's share.
        "read_floor_cpu_seconds": round(floor_cpu, 3),
        "changed_run_floor_cpu_ratio": round(second["cpu_seconds"] / floor_cpu, 2),
        "unchanged_run_floor_cpu_ratio": round(third["cpu_seconds"] / floor_cpu, 2),
        "first_load_seconds": first["seconds"],
        "changed_run_seconds": second["seconds"],
        "changed_run_cpu_seconds": second["cpu_seconds"],
        "changed_run_floor_ratio": round(second["seconds"] / floor_seconds, 2),
        "changed_run_target": TARGETS[dialect]["changed"],
        "changed_run_counts": {
            "upserts": second["record_count"],
            "deletes": second["delete_count"],
        },
        "unchanged_run_seconds": third["seconds"],
        "unchanged_run_cpu_seconds": third["cpu_seconds"],
        "unchanged_run_floor_ratio": round(third["seconds"] / floor_seconds, 2),
        "unchanged_run_target": TARGETS[dialect]["unchanged"],
        "unchanged_run_upserts": third["record_count"],
        "read_floor_vs_first_load": round(floor_seconds / first["seconds"], 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "statuses": [r["status"] for r in runs],
        "errors": [r["error"] for r in runs if r["error"]],
        "target_matches_source": after_changes["matches"] and after_nothing["matches"],
        "differences": (after_changes["differences"] + after_nothing["differences"])[:5],
    }


def run_sqlite(rows: int, tmp: Path) -> dict[str, Any]:
    source, target = tmp / "source.sqlite3", tmp / "target.sqlite3"
    create_source(source, rows)
    job = {
        "key": "bench_incremental_sqlite",
        "sql": f"SELECT {SQLITE_COLUMNS} FROM src",
        "source": f"sqlite:///{source}",
        "target": f"sqlite:///{target}",
        "target_table": "dst",
    }
    return measure(
        "sqlite",
        rows,
        tmp / "data-sqlite",
        job,
        lambda: mutate(source, rows),
        lambda: read_floor(source),
        lambda: servers.compare(sqlite_rows(source, "src"), sqlite_rows(target, "dst")),
    )


def run_postgres(rows: int, tmp: Path) -> dict[str, Any]:
    source, target = servers.unique("pg_isrc"), servers.unique("pg_idst")
    with servers.pg_databases(source, target):
        servers.pg_create_source(source, rows)
        job = {
            "key": "bench_incremental_pg",
            "sql": f"SELECT {servers.COLUMNS} FROM src",
            "source": servers.pg_url(source),
            "target": servers.pg_url(target),
            "target_table": "dst",
        }
        return measure(
            "postgresql",
            rows,
            tmp / "data-pg",
            job,
            lambda: servers.pg_mutate(source, rows),
            lambda: servers.pg_read_floor(source),
            lambda: servers.compare(servers.pg_rows(source, "src"), servers.pg_rows(target, "dst")),
        )


def run_mariadb(rows: int, tmp: Path) -> dict[str, Any]:
    source, target = servers.unique("my_isrc"), servers.unique("my_idst")
    with servers.my_databases(source, target):
        servers.my_create_source(source, rows)
        job = {
            "key": "bench_incremental_my",
            "sql": f"SELECT {servers.COLUMNS} FROM src",
            "source": servers.my_url(source),
            "target": servers.my_url(target),
            "target_table": "dst",
        }
        return measure(
            "mariadb",
            rows,
            tmp / "data-my",
            job,
            lambda: servers.my_mutate(source, rows),
            lambda: servers.my_read_floor(source),
            lambda: servers.compare(servers.my_rows(source, "src"), servers.my_rows(target, "dst")),
        )


RUNS = {"sqlite": run_sqlite, "postgresql": run_postgres, "mariadb": run_mariadb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--dialect", choices=[*RUNS, "all"], default="all", help="which dialects to run"
    )
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "sync_incremental", "rows": args.rows}
    with tempfile.TemporaryDirectory(prefix="bench-sync-incr-") as tmp:
        for name, run in RUNS.items():
            if args.dialect in (name, "all"):
                report[name] = run(args.rows, Path(tmp))
    report["rss_target_mb"] = 300
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

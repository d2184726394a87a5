"""First load into MariaDB through the engine vs a hand-written multi-row INSERT loop (issue 20).

Two cases on the 10-column table of bench/sync_postgres.py: MariaDB → MariaDB and
PostgreSQL → MariaDB. Baseline: read the source with a server-side cursor (fetchmany of
10,000) and write it with one multi-row `INSERT` per 1,000 rows into an empty table, in one
transaction. Target: the engine within 2x of it, peak RSS < 300 MB. Runs alternate (the
machine is shared); each side's best counts; the target is compared with the source row by row
after every engine run. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql.cursors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import best_figures, run_engine, timed
from bench.servers import (
    COLUMNS,
    MY_SCHEMA,
    compare,
    my_connect,
    my_create_source,
    my_databases,
    my_rows,
    my_url,
    pg_create_source,
    pg_databases,
    pg_dsn,
    pg_rows,
    pg_url,
    unique,
)

ROWS_PER_STATEMENT = 1_000


def _mysql_source(database: str) -> Iterator[list[tuple]]:
    conn = my_connect(database)
    try:
        with conn.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(f"SELECT {COLUMNS} FROM src")
            while rows := cursor.fetchmany(10_000):
                yield rows
    finally:
        conn.close()


def _postgres_source(database: str) -> Iterator[list[tuple]]:
    # A developer writing into MariaDB asks PostgreSQL for UTC wall time (DATETIME has no zone).
    select = COLUMNS.replace(", at", ", (at AT TIME ZONE 'UTC') AS at")
    with psycopg.connect(pg_dsn(database)) as conn, conn.cursor(name="bench_read") as cursor:
        cursor.execute(f"SELECT {select} FROM src")
        while rows := cursor.fetchmany(10_000):
            yield rows


def baseline(batches: Iterator[list[tuple]], target: str) -> int:
    """Multi-row INSERTs of 1,000 rows, built by the driver's escaping, in one transaction."""
    conn = my_connect(target)
    total = 0
    try:
        with conn.cursor() as cursor:
            cursor.execute(MY_SCHEMA.format(name="dst"))
            marks = "(" + ", ".join(["%s"] * 10) + ")"
            for rows in batches:
                for start in range(0, len(rows), ROWS_PER_STATEMENT):
                    chunk = rows[start : start + ROWS_PER_STATEMENT]
                    values = ",".join(cursor.mogrify(marks, row) for row in chunk)
                    cursor.execute(f"INSERT INTO dst ({COLUMNS}) VALUES {values}")
                    total += len(chunk)
        conn.commit()
    finally:
        conn.close()
    return total


def run_case(case: str, source: str, rows_of_source: Any, repeat: int, tmp: Path) -> dict:
    source_url = my_url(source) if case == "mariadb" else pg_url(source)
    read = _mysql_source if case == "mariadb" else _postgres_source
    base_runs: list[float] = []
    engine_runs: list[dict] = []
    checks: list[dict] = []
    targets = [unique(f"my_{case}_base{i}") for i in range(repeat)] + [
        unique(f"my_{case}_dst{i}") for i in range(repeat)
    ]
    with my_databases(*targets):
        for attempt in range(repeat):
            seconds, _ = timed(baseline, read(source), targets[attempt])
            base_runs.append(seconds)
            target = targets[repeat + attempt]
            job = {
                "key": f"bench_{case}_mariadb",
                "sql": f"SELECT {COLUMNS} FROM src",
                "source": source_url,
                "target": my_url(target),
                "target_table": "dst",
            }
            engine_runs.append(run_engine(tmp / f"{case}{attempt}", job))
            checks.append(compare(rows_of_source(), my_rows(target, "dst")))
    return best_figures(
        "baseline_insert_loop_seconds", base_runs, engine_runs, ratio_target=2.0, checks=checks
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="alternate runs of each; the best one counts"
    )
    parser.add_argument("--case", choices=["mariadb", "postgres", "both"], default="both")
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    report: dict[str, Any] = {"benchmark": "sync_mariadb", "rows": args.rows, "columns": 10}
    with tempfile.TemporaryDirectory(prefix="bench-sync-my-") as tmp:
        if args.case in ("mariadb", "both"):
            source = unique("my_src")
            with my_databases(source):
                my_create_source(source, args.rows)
                report["mariadb_to_mariadb"] = run_case(
                    "mariadb", source, lambda: my_rows(source, "src"), repeat, Path(tmp)
                )
        if args.case in ("postgres", "both"):
            pg_source = unique("pg_src")
            with pg_databases(pg_source):
                pg_create_source(pg_source, args.rows)
                report["postgres_to_mariadb"] = run_case(
                    "postgres", pg_source, lambda: pg_rows(pg_source, "src"), repeat, Path(tmp)
                )
    report["rss_target_mb"] = 300
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

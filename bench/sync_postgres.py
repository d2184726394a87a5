"""First load PostgreSQL → PostgreSQL through the engine vs a binary COPY pipe (issue 20).

Baseline: `COPY (SELECT …) TO STDOUT (FORMAT binary)` from the source piped into
`COPY … FROM STDIN (FORMAT binary)` on the target in one Python process: the physical limit,
no change detection, no conversion. Target: the engine within 1.5x of it, peak RSS < 300 MB.
Runs alternate (the machine is shared); each side's best counts. The target is compared with
the source row by row after every engine run. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import best_figures, run_engine, timed
from bench.servers import (
    COLUMNS,
    PG_HOST,
    PG_PORT,
    PG_SCHEMA,
    PG_USER,
    compare,
    pg_create_source,
    pg_databases,
    pg_dsn,
    pg_rows,
    pg_url,
    unique,
)

# Kept for bench/batch_types.py, which builds the same data set.
SCHEMA = PG_SCHEMA
create_source = pg_create_source
dsn = pg_dsn
HOST, PORT, USER, ADMIN = PG_HOST, PG_PORT, PG_USER, pg_dsn("postgres")


def baseline(source: str, target: str) -> None:
    """Stream the rows out of one server and into the other with binary COPY, nothing else."""
    with psycopg.connect(pg_dsn(source)) as src, psycopg.connect(pg_dsn(target)) as dst:
        dst.execute(PG_SCHEMA.format(name="dst"))
        with (
            src.cursor().copy(f"COPY (SELECT {COLUMNS} FROM src) TO STDOUT (FORMAT binary)") as out,
            dst.cursor().copy(f"COPY dst ({COLUMNS}) FROM STDIN (FORMAT binary)") as into,
        ):
            for data in out:
                into.write(data)
        dst.commit()


def checksum(database: str, table: str) -> list:
    """Aggregates (bench/batch_types.py); the benchmarks here compare row by row."""
    with psycopg.connect(pg_dsn(database)) as conn:
        row = conn.execute(
            f"SELECT count(*), sum(id), sum(price), sum(length(name)), max(at)::text FROM {table}"
        ).fetchone()
        return [str(v) for v in row] if row else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="alternate runs of each; the best one counts"
    )
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    names = {"src": unique("pg_src")}
    for attempt in range(repeat):
        names[f"base{attempt}"] = unique(f"pg_base{attempt}")
        names[f"dst{attempt}"] = unique(f"pg_dst{attempt}")
    with pg_databases(*names.values()):
        pg_create_source(names["src"], args.rows)
        base_runs: list[float] = []
        engine_runs: list[dict] = []
        checks: list[dict] = []
        with tempfile.TemporaryDirectory(prefix="bench-sync-pg-") as tmp:
            for attempt in range(repeat):
                base_seconds, _ = timed(baseline, names["src"], names[f"base{attempt}"])
                base_runs.append(base_seconds)
                job = {
                    "key": "bench_postgres",
                    "sql": f"SELECT {COLUMNS} FROM src",
                    "source": pg_url(names["src"]),
                    "target": pg_url(names[f"dst{attempt}"]),
                    "target_table": "dst",
                }
                engine_runs.append(run_engine(Path(tmp) / f"data{attempt}", job))
                checks.append(
                    compare(pg_rows(names["src"], "src"), pg_rows(names[f"dst{attempt}"], "dst"))
                )
        print(
            json.dumps(
                {
                    "benchmark": "sync_postgres",
                    "rows": args.rows,
                    "columns": 10,
                    **best_figures(
                        "baseline_binary_copy_pipe_seconds",
                        base_runs,
                        engine_runs,
                        ratio_target=1.5,
                        checks=checks,
                    ),
                    "rss_target_mb": 300,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

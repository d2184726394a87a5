"""First load PostgreSQL → PostgreSQL through the engine (COPY path) vs a raw COPY pipe.

Baseline: `COPY (SELECT …) TO STDOUT` from the source piped into `COPY … FROM STDIN` on the
target, the fastest way to move the rows with no change detection at all. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_engine, timed

HOST = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1")
PORT = int(os.environ.get("TEST_POSTGRES_PORT", "5432"))
USER = os.environ.get("TEST_POSTGRES_USER", "postgres")
ADMIN = f"host={HOST} port={PORT} user={USER} dbname=postgres"
SCHEMA = (
    "CREATE TABLE {name} (id bigint PRIMARY KEY, qty integer, stock bigint, "
    "price numeric(12,2), weight double precision, code varchar(20), name text, note text, "
    "day date, at timestamptz)"
)
COLUMNS = "id, qty, stock, price, weight, code, name, note, day, at"


def dsn(database: str) -> str:
    return f"host={HOST} port={PORT} user={USER} dbname={database}"


def create_source(database: str, rows: int) -> None:
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        conn.execute(SCHEMA.format(name="src"))
        conn.execute(
            "INSERT INTO src SELECT i, i %% 1000, i * 7, (i %% 100000) / 100.0, random(), "
            "'C' || lpad(i::text, 9, '0'), 'name ' || (i %% 77777) || ' é', "
            "repeat('x', 10 + i %% 30), date '2024-01-01' + (i %% 365), "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 s' "
            "FROM generate_series(1, %s) AS i",
            (rows,),
        )
        conn.execute("ANALYZE src")


def baseline(source: str, target: str) -> None:
    """Stream the rows out of one server and into the other with COPY, nothing else."""
    with psycopg.connect(dsn(source)) as src, psycopg.connect(dsn(target)) as dst:
        dst.execute(SCHEMA.format(name="dst"))
        with (
            src.cursor().copy(f"COPY (SELECT {COLUMNS} FROM src) TO STDOUT") as out,
            dst.cursor().copy(f"COPY dst ({COLUMNS}) FROM STDIN") as into,
        ):
            for data in out:
                into.write(data)
        dst.commit()


def checksum(database: str, table: str) -> list:
    with psycopg.connect(dsn(database)) as conn:
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
    names = {"src": f"bench_src_{uuid.uuid4().hex[:8]}"}
    for attempt in range(repeat):
        names[f"base{attempt}"] = f"bench_base{attempt}_{uuid.uuid4().hex[:8]}"
        names[f"dst{attempt}"] = f"bench_dst{attempt}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        create_source(names["src"], args.rows)
        base_runs: list[float] = []
        engine_runs: list[dict] = []
        same = True
        with tempfile.TemporaryDirectory(prefix="bench-sync-pg-") as tmp:
            # Alternate baseline and engine runs on the shared machine; each one's best counts.
            for attempt in range(repeat):
                base_seconds, _ = timed(baseline, names["src"], names[f"base{attempt}"])
                base_runs.append(base_seconds)
                job = {
                    "key": "bench_postgres",
                    "sql": f"SELECT {COLUMNS} FROM src",
                    "source": f"postgresql://{USER}@{HOST}:{PORT}/{names['src']}",
                    "target": f"postgresql://{USER}@{HOST}:{PORT}/{names[f'dst{attempt}']}",
                    "target_table": "dst",
                }
                engine_runs.append(run_engine(Path(tmp) / f"data{attempt}", job))
                same = same and checksum(names[f"dst{attempt}"], "dst") == checksum(
                    names["src"], "src"
                )
        base_seconds = min(base_runs)
        engine = min(engine_runs, key=lambda run: run["seconds"])
        print(
            json.dumps(
                {
                    "benchmark": "sync_postgres",
                    "rows": args.rows,
                    "columns": 10,
                    "baseline_copy_pipe_seconds": round(base_seconds, 3),
                    "engine_seconds": engine["seconds"],
                    "ratio": round(engine["seconds"] / base_seconds, 2),
                    "baseline_runs": [round(s, 3) for s in base_runs],
                    "engine_runs": [run["seconds"] for run in engine_runs],
                    "engine_peak_rss_mb": max(run["peak_rss_mb"] for run in engine_runs),
                    "status": engine["status"],
                    "error": engine["error"],
                    "target_matches_source": same,
                },
                indent=2,
            )
        )
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

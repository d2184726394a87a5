"""PostgreSQL and MariaDB plumbing shared by the server benchmarks.

Throw-away databases are named `{BENCH_DB_PREFIX}_…` (default `bench`), so benchmarks run by
several people on one server do not collide. Every benchmark checks its target row by row
(`compare`), not by aggregates: a delete not propagated or a value changed on the way fails it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import zip_longest
from typing import Any

import psycopg
import pymysql
import pymysql.cursors

PG_HOST = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_POSTGRES_PORT", "5432"))
PG_USER = os.environ.get("TEST_POSTGRES_USER", "postgres")
MY_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MY_PORT = int(os.environ.get("TEST_MYSQL_PORT", "3306"))
MY_USER = os.environ.get("TEST_MYSQL_USER", "root")
PREFIX = os.environ.get("BENCH_DB_PREFIX", "bench")

COLUMNS = "id, qty, stock, price, weight, code, name, note, day, at"
PG_SCHEMA = (
    "CREATE TABLE {name} (id bigint PRIMARY KEY, qty integer, stock bigint, "
    "price numeric(12,2), weight double precision, code varchar(20), name text, note text, "
    "day date, at timestamptz)"
)
MY_SCHEMA = (
    "CREATE TABLE {name} (id bigint PRIMARY KEY, qty int, stock bigint, price decimal(12,2), "
    "weight double, code varchar(20), name text, note text, day date, at datetime(6)) "
    "CHARACTER SET utf8mb4"
)


def unique(kind: str) -> str:
    return f"{PREFIX}_{kind}_{uuid.uuid4().hex[:8]}"


# -- PostgreSQL ---------------------------------------------------------------------------------
def pg_dsn(database: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}"


def pg_url(database: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@contextmanager
def pg_databases(*names: str) -> Iterator[None]:
    admin = pg_dsn("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_create_source(database: str, rows: int) -> None:
    with psycopg.connect(pg_dsn(database), autocommit=True) as conn:
        conn.execute(PG_SCHEMA.format(name="src"))
        conn.execute(
            "INSERT INTO src SELECT i, i %% 1000, i * 7, (i %% 100000) / 100.0, random(), "
            "'C' || lpad(i::text, 9, '0'), 'name ' || (i %% 77777) || ' é', "
            "repeat('x', 10 + i %% 30), date '2024-01-01' + (i %% 365), "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 s' "
            "FROM generate_series(1, %s) AS i",
            (rows,),
        )
        # VACUUM as well as ANALYZE: the first scan after a bulk change sets every touched
        # row's hint bits and prunes old versions, work that would be charged to whichever of
        # the engine and the baseline reads first (bench/peers.py does the same).
        conn.execute("VACUUM ANALYZE src")


def pg_mutate(database: str, rows: int) -> dict[str, int]:
    """1% of the rows updated, 0.1% deleted, 0.1% inserted (spread over the key range)."""
    updated, deleted, inserted = rows // 100, rows // 1000, rows // 1000
    with psycopg.connect(pg_dsn(database), autocommit=True) as conn:
        conn.execute(
            "UPDATE src SET qty = qty + 1, name = name || '*' WHERE id %% %s = 7",
            (rows // updated,),
        )
        conn.execute("DELETE FROM src WHERE id %% %s = 3", (rows // deleted,))
        conn.execute(
            "INSERT INTO src SELECT i, 1, 2, 3.5, 0.25, 'new', 'new row', 'n', "
            "date '2025-01-01', timestamptz '2025-01-01 00:00:00+00' "
            "FROM generate_series(%s::bigint, %s::bigint) AS i",
            (rows + 1, rows + inserted),
        )
        conn.execute("VACUUM ANALYZE src")  # as in pg_create_source
    return {"updated": updated, "deleted": deleted, "inserted": inserted}


def pg_rows(database: str, table: str, batch: int = 20_000) -> Iterator[tuple]:
    with psycopg.connect(pg_dsn(database)) as conn, conn.cursor(name="dz_bench_cmp") as cursor:
        conn.execute("SET TimeZone = 'UTC'")
        cursor.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY id")
        while rows := cursor.fetchmany(batch):
            yield from rows


def pg_read_floor(database: str, sql: str = f"SELECT {COLUMNS} FROM src") -> int:
    """Every row read as the engine's reader does (named cursor, fetchmany of 10,000)."""
    total = 0
    with (
        psycopg.connect(pg_dsn(database), options="-c TimeZone=UTC") as conn,
        conn.cursor(name="dz_bench_floor") as cursor,
    ):
        cursor.execute(sql)
        while rows := cursor.fetchmany(10_000):
            total += len(rows)
    return total


# -- MariaDB ------------------------------------------------------------------------------------
def my_connect(database: str | None = None, **extra: Any) -> pymysql.Connection:
    return pymysql.connect(
        host=MY_HOST, port=MY_PORT, user=MY_USER, database=database, charset="utf8mb4", **extra
    )


def my_url(database: str) -> str:
    return f"mysql+pymysql://{MY_USER}@{MY_HOST}:{MY_PORT}/{database}"


@contextmanager
def my_databases(*names: str) -> Iterator[None]:
    conn = my_connect(autocommit=True)
    try:
        with conn.cursor() as cursor:
            for name in names:
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield
    finally:
        with conn.cursor() as cursor:
            for name in names:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def my_create_source(database: str, rows: int) -> None:
    """The PostgreSQL data set's values, built by the server (the sequence engine)."""
    conn = my_connect(database, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(MY_SCHEMA.format(name="src"))
            step = 100_000
            for start in range(1, rows + 1, step):
                stop = min(rows, start + step - 1)
                cursor.execute(
                    "INSERT INTO src SELECT seq, seq % 1000, seq * 7, (seq % 100000) / 100.0, "
                    "rand(seq), CONCAT('C', LPAD(seq, 9, '0')), "
                    "CONCAT('name ', seq % 77777, ' é'), REPEAT('x', 10 + seq % 30), "
                    "DATE '2024-01-01' + INTERVAL (seq % 365) DAY, "
                    "TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND "
                    f"FROM seq_{start}_to_{stop}"
                )
            cursor.execute("ANALYZE TABLE src")
            cursor.fetchall()
    finally:
        conn.close()


def my_mutate(database: str, rows: int) -> dict[str, int]:
    updated, deleted, inserted = rows // 100, rows // 1000, rows // 1000
    conn = my_connect(database, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "UPDATE src SET qty = qty + 1, name = CONCAT(name, '*') WHERE id %% %s = 7",
                (rows // updated,),
            )
            cursor.execute("DELETE FROM src WHERE id %% %s = 3", (rows // deleted,))
            cursor.execute(
                "INSERT INTO src SELECT seq, 1, 2, 3.5, 0.25, 'new', 'new row', 'n', "
                "DATE '2025-01-01', TIMESTAMP '2025-01-01 00:00:00' "
                f"FROM seq_{rows + 1}_to_{rows + inserted}"
            )
    finally:
        conn.close()
    return {"updated": updated, "deleted": deleted, "inserted": inserted}


def my_rows(database: str, table: str, batch: int = 20_000) -> Iterator[tuple]:
    conn = my_connect(database)
    try:
        with conn.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY id")
            while rows := cursor.fetchmany(batch):
                yield from rows
    finally:
        conn.close()


def my_read_floor(database: str, sql: str = f"SELECT {COLUMNS} FROM src") -> int:
    """Every row read as the engine's reader does (SSCursor, fetchmany of 10,000)."""
    conn = my_connect(database)
    total = 0
    try:
        with conn.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(sql)
            while rows := cursor.fetchmany(10_000):
                total += len(rows)
    finally:
        conn.close()
    return total


# -- comparing ----------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """One value as both dialects can hold it: aware timestamps as UTC wall time."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, decimal.Decimal):
        return value.normalize()
    return value


def compare(source: Iterator[tuple], target: Iterator[tuple]) -> dict[str, Any]:
    """Both sides in key order, row by row; the first differences are named."""
    rows = 0
    differences: list[str] = []
    for left, right in zip_longest(source, target):
        rows += 1
        if left is None or right is None or tuple(map(_plain, left)) != tuple(map(_plain, right)):
            if len(differences) < 3:
                differences.append(f"source {left!r} / target {right!r}")
            else:
                differences.append("…")
                break
    return {"rows_compared": rows, "matches": not differences, "differences": differences}

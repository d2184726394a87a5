"""Read rows from a SQL database in batches, with server-side cursors, typed as logical columns.

SQLite, PostgreSQL (psycopg 3 named cursor) and MySQL/MariaDB (PyMySQL SSCursor): memory
stays one batch deep whatever the size of the result.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from jobs.systems import pgcopy
from jobs.systems.batch import Batch, Column

logger = logging.getLogger(__name__)

Converter = Callable[[Any], Any]

# PostgreSQL type OIDs → logical types.
_PG_TYPES = {
    16: "boolean",
    17: "binary",
    20: "integer",
    21: "integer",
    23: "integer",
    26: "integer",
    700: "float",
    701: "float",
    1700: "decimal",
    25: "string",
    1043: "string",
    1042: "string",
    19: "string",
    18: "string",
    1082: "date",
    1083: "time",
    1114: "datetime",
    1184: "datetimetz",
    114: "json",
    3802: "json",
    2950: "string",
}
# MySQL field types (pymysql.constants.FIELD_TYPE) → logical types; text vs binary is
# decided from the values (PyMySQL returns bytes for binary collations).
_MYSQL_TYPES = {
    0: "decimal",
    246: "decimal",
    1: "integer",
    2: "integer",
    3: "integer",
    8: "integer",
    9: "integer",
    13: "integer",
    4: "float",
    5: "float",
    7: "datetime",
    12: "datetime",
    10: "date",
    14: "date",
    11: "time",
    15: "string",
    253: "string",
    254: "string",
    247: "string",
    248: "string",
    249: "string",
    250: "string",
    251: "string",
    252: "string",
    245: "json",
    16: "binary",
    255: "binary",
}
_MYSQL_BLOBS = {249, 250, 251, 252}


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # Aware timestamps travel in UTC with a fixed offset, whatever the session's zone.
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC)


def _mysql_time(value: dt.timedelta | None) -> Any:
    # MySQL TIME comes back as a duration; within a day it is a time of day.
    if value is None:
        return None
    if dt.timedelta(0) <= value < dt.timedelta(days=1):
        return (dt.datetime.min + value).time()
    return str(value)


def _to_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _to_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _infer(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, dt.datetime):
        return "datetimetz" if value.tzinfo is not None else "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.time):
        return "time"
    if isinstance(value, bytes | bytearray | memoryview):
        return "binary"
    if isinstance(value, dict | list):
        return "json"
    return "string"


def _describe(dialect: str, description: Any) -> tuple[list[Column], list[Converter | None]]:
    columns: list[Column] = []
    converters: list[Converter | None] = []
    for item in description:
        name = item[0]
        converter: Converter | None = None
        if dialect == "postgresql":
            oid = item.type_code
            logical = _PG_TYPES.get(oid, "")
            column = Column(name, logical or "string")
            if logical == "decimal" and item.precision:
                column = Column(name, "decimal", precision=item.precision, scale=item.scale or 0)
            elif logical == "string" and item.display_size and oid != 25:
                column = Column(name, "string", length=item.display_size)
            elif oid == 700:
                column = Column(name, "float", precision=24)
            if logical == "datetimetz":
                converter = _utc
            elif logical == "json" or oid == 2950 or not logical:
                converter = _to_text
        elif dialect == "mysql":
            code, length, scale = item[1], item[3] or 0, item[5] or 0
            logical = _MYSQL_TYPES.get(code, "")
            column = Column(name, logical or "string")
            if logical == "decimal":
                precision = max(1, length - 1 - (1 if scale else 0))
                column = Column(name, "decimal", precision=precision, scale=scale)
            elif code == 1 and length == 1:
                column, converter = Column(name, "boolean"), _to_bool
            elif logical == "string" and code not in _MYSQL_BLOBS and length:
                column = Column(name, "string", length=max(1, length // 4))
            elif code == 4:
                column = Column(name, "float", precision=24)
            if logical == "time":
                converter = _mysql_time
            elif not logical:
                converter = _to_text
        else:
            column = Column(name, "")  # SQLite: typed from the values
        columns.append(column)
        converters.append(converter)
    return columns, converters


def _refine(
    columns: list[Column], converters: list[Converter | None], rows: list[tuple]
) -> list[Column]:
    """Settle types the cursor could not tell (SQLite; MySQL text vs binary) from the values."""
    refined: list[Column] = []
    for position, column in enumerate(columns):
        if column.type in ("", "string"):
            sample = next((row[position] for row in rows if row[position] is not None), None)
            if column.type == "" or isinstance(sample, bytes):
                inferred = _infer(sample) if sample is not None else "string"
                if inferred == "json":
                    converters[position] = _to_text
                elif inferred == "datetimetz":
                    converters[position] = _utc
                # A text length does not carry over to bytes (MySQL counts characters of up
                # to four bytes): binary columns go unbounded rather than risk truncation.
                length = None if inferred == "binary" else column.length
                column = Column(column.name, inferred, length=length)
        refined.append(column)
    return refined


def _placeholder(dialect_paramstyle: str) -> str:
    return "?" if dialect_paramstyle == "qmark" else "%s"


def read_batches(
    engine: Engine,
    sql: str,
    *,
    params: tuple = (),
    batch_size: int = 10_000,
    limit: int | None = None,
    hashed: bool = False,
) -> Iterator[Batch]:
    """Run `sql` (with `?` marks for `params`) and yield batches of at most `batch_size` rows.

    Every batch carries the same column list; `limit` stops after that many rows. `hashed`:
    the last column is the row's digest (jobs.systems.db.hashing), given as `Batch.hashes`.
    """
    dialect = engine.dialect.name
    paramstyle = engine.dialect.paramstyle
    if params:
        if paramstyle in ("format", "pyformat"):
            sql = sql.replace("%", "%%")
        sql = sql.replace("\x00?\x00", _placeholder(paramstyle))
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = _server_cursor(dialect, raw)
        try:
            if params:
                cursor.execute(sql, params)
            else:
                cursor.execute(sql)
            if cursor.description is None:
                raise ValueError("SqlRead returned no result set (is it a SELECT?).")
            description = cursor.description[:-1] if hashed else cursor.description
            columns, converters = _describe(dialect, description)
            if dialect == "postgresql" and getattr(raw.info, "timezone", None) is dt.UTC:
                converters = [None if fn is _utc else fn for fn in converters]
            refined = False
            remaining = limit
            while True:
                size = batch_size if remaining is None else min(batch_size, remaining)
                if size <= 0:
                    break
                rows = cursor.fetchmany(size)
                if not rows:
                    break
                hashes = None
                if hashed:
                    hashes = [row[-1] for row in rows]
                    rows = [row[:-1] for row in rows]
                if not refined:
                    columns = _refine(columns, converters, rows)
                    refined = True
                rows = _convert(rows, converters)
                if remaining is not None:
                    remaining -= len(rows)
                yield Batch(columns, rows, hashes)
            if not refined:
                yield Batch(_refine(columns, converters, []), [])
        finally:
            try:
                cursor.close()
            finally:
                connection.rollback()


# PostgreSQL types whose text COPY output jobs.systems.pgcopy decodes into the values the cursor
# reader gives (json is not among them: the cursor reader re-serialises it).
_COPY_OIDS = {16, 17, 20, 21, 23, 700, 701, 1700, 25, 1043, 1042, 1082, 1083, 1114, 1184}


def copy_columns(engine: Engine, sql: str) -> list[Column] | None:
    """The columns of `sql` when its rows can be read as text COPY lines (jobs.systems.pgcopy):
    a PostgreSQL source, every column of a type pgcopy decodes, and a session whose text output
    is the one pgcopy reads (ISO dates, hex bytea, UTC, UTF-8). None otherwise."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as connection:
        raw: Any = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute(
                "SELECT current_setting('DateStyle'), current_setting('bytea_output'), "
                "current_setting('client_encoding')"
            )
            datestyle, bytea, encoding = cursor.fetchone()
            if (
                not datestyle.startswith("ISO")
                or bytea != "hex"
                or encoding != "UTF8"
                or getattr(raw.info, "timezone", None) is not dt.UTC
            ):
                return None
            cursor.execute(f"SELECT * FROM ({sql.strip().rstrip(';')}) dz_src WHERE 1 = 0")
            description = cursor.description
            if description is None or any(d.type_code not in _COPY_OIDS for d in description):
                return None
            columns, _ = _describe("postgresql", description)
        finally:
            cursor.close()
            connection.rollback()
    return columns if all(c.type in pgcopy.DECODABLE for c in columns) else None


def read_copy_batches(
    engine: Engine, sql: str, columns: list[Column], *, batch_size: int = 10_000
) -> Iterator[Batch]:
    """The rows of `sql` (its first column a row digest, jobs.systems.db.hashing
    `copy_rows_sql`) read by `COPY … TO STDOUT`, as batches of `pgcopy.CopyRows` with the
    digests as `Batch.hashes`: no Python object per value is made on the way."""
    with engine.connect() as connection:
        raw: Any = connection.connection.dbapi_connection
        assert raw is not None
        try:
            with raw.cursor() as cursor:
                # A COPY of a query may run in parallel, and a Gather interleaves its workers'
                # rows; a cursor never does. Key order is what the stage store keeps compact
                # (segments), so the COPY reads in the order a cursor would.
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                with cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:
                    # libpq hands over one row per read. Each is appended to one buffer by a
                    # C loop (deque over map): keeping psycopg's memoryviews to join them
                    # later cost four times the CPU of the read itself.
                    rows = iter(copy)
                    buffer = bytearray()
                    sent = False
                    while True:
                        size = len(buffer)
                        deque(map(buffer.extend, islice(rows, batch_size)), maxlen=0)
                        if len(buffer) == size:  # no more rows
                            if buffer:
                                raise ValueError("COPY output ended in the middle of a row.")
                            break
                        end = buffer.rfind(b"\n") + 1
                        data = bytes(buffer[:end])
                        del buffer[:end]
                        sent = True
                        yield _copy_batch(columns, data)
                    if not sent:
                        yield _copy_batch(columns, b"")
        finally:
            connection.rollback()


def _copy_batch(columns: list[Column], data: bytes) -> Batch:
    if not data:
        return Batch(columns, [])
    if not data.endswith(b"\n"):
        raise ValueError("COPY output ended in the middle of a row.")
    lines = pgcopy.lines_of(data)
    digest_and_row = pc.split_pattern(lines, b"\t", max_splits=1)
    hashes = pc.cast(pc.list_element(digest_and_row, 0).cast(pa.string()), pa.int64())
    rows = pc.list_element(digest_and_row, 1)
    copied = pgcopy.CopyRows(pgcopy.joined(rows), len(rows), columns, rows)
    return Batch(columns, copied, hashes.to_pylist())  # type: ignore[arg-type]


def estimate_rows(engine: Engine, sql: str) -> int | None:
    """The source's own estimate of the rows `sql` returns: its query planner's figure.

    EXPLAIN plans the query without running it, so this costs a planning, never a second scan
    (a COUNT would). None where the database gives no such figure (SQLite's plans carry none;
    a MySQL join's per-table figures do not multiply into one) or the plan cannot be read: the
    estimate only feeds the console's progress bar, and a run never fails for it.
    """
    dialect = engine.dialect.name
    if dialect not in ("postgresql", "mysql", "mariadb"):
        return None
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            cursor = raw.cursor()
            try:
                if dialect == "postgresql":
                    return _postgresql_estimate(cursor, sql)
                return _mysql_estimate(cursor, sql)
            finally:
                cursor.close()
                connection.rollback()
    except Exception as exc:  # the read itself will say what is wrong with the SQL
        logger.debug("no row estimate for the SqlRead: %s", exc)
        return None


def _postgresql_estimate(cursor: Any, sql: str) -> int | None:
    # Read-only, and with (empty) parameters, so the extended protocol refuses a second
    # statement after the EXPLAIN: the estimate never runs anything the read would not.
    cursor.execute("SET TRANSACTION READ ONLY")
    cursor.execute(f"EXPLAIN (FORMAT JSON) {sql.replace('%', '%%')}", ())
    plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _mysql_estimate(cursor: Any, sql: str) -> int | None:
    cursor.execute(f"EXPLAIN {sql}")
    names = [column[0].lower() for column in cursor.description]
    rows = cursor.fetchall()
    if len(rows) != 1:
        return None
    plan = dict(zip(names, rows[0], strict=True))
    if plan.get("rows") is None:
        return None
    return int(int(plan["rows"]) * float(plan.get("filtered") or 100) / 100)


def _server_cursor(dialect: str, raw: Any) -> Any:
    if dialect == "postgresql":
        # A named cursor keeps the result on the server; rows come in fetchmany-sized round trips.
        return raw.cursor(name=f"dz_read_{uuid.uuid4().hex[:12]}")
    if dialect == "mysql":
        import pymysql.cursors

        return raw.cursor(pymysql.cursors.SSCursor)
    return raw.cursor()


def _convert(rows: list[Any], converters: list[Converter | None]) -> list[tuple]:
    active = [(i, fn) for i, fn in enumerate(converters) if fn is not None]
    if not active:
        return rows if not rows or type(rows[0]) is tuple else [tuple(row) for row in rows]
    converted: list[tuple] = []
    for row in rows:
        values = list(row)
        for i, fn in active:
            values[i] = fn(values[i])
        converted.append(tuple(values))
    return converted


def wrap_since(engine: Engine, sql: str, column: str) -> str:
    """`sql` filtered to rows whose `column` is at or past a bound pointer (one parameter)."""
    quoted = engine.dialect.identifier_preparer.quote(column)
    body = sql.strip().rstrip(";")
    return f"SELECT * FROM ({body}) dz_src WHERE dz_src.{quoted} >= \x00?\x00"

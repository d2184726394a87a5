"""Apply change logs to a SQL database: native upsert and bulk path per dialect, deletes, DDL.

PostgreSQL: COPY into a temporary staging table, then one INSERT … ON CONFLICT per chunk.
MySQL/MariaDB: multi-row INSERT … ON DUPLICATE KEY UPDATE. SQLite: INSERT … ON CONFLICT
executemany. The writer's LastExecutionId is kept in `_datazen_state` in the same transaction
as the rows, so a crash mid-apply leaves the target as it was before that change log.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Date,
    DateTime,
    Double,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Time,
    and_,
    bindparam,
    inspect,
    select,
)
from sqlalchemy import Column as SAColumn
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import JSON, NVARCHAR, TypeEngine

from jobs.sync.changelog import ChangeLogReader, Frame, Header
from jobs.systems.base import ApplyHooks, ApplyResult, LeaseLost
from jobs.systems.batch import Batch, Column
from jobs.systems.pgcopy import CopyRows

STATE_TABLE = "_datazen_state"
# Each writer's current claim (jobs/leases.py fence_token); a row apart from the state row,
# which a paused worker's open transaction may hold locked.
FENCE_TABLE = "_datazen_fence"
DEFAULT_BATCH_COUNT = 10_000


@dataclass
class WriterSettings:
    target_object: str
    writer_guid: str
    keys: list[str] = field(default_factory=list)
    propagate_delete: bool = False
    batch_count: int = DEFAULT_BATCH_COUNT
    exec_timeout: int = 0
    recreate: bool = False
    auto_recreate: bool = False


def parse_target(name: str) -> tuple[str | None, str]:
    """`[schema].table`, `"schema"."table"`, `` `db`.`t` `` or `schema.table` → (schema, table)."""
    parts = re.findall(r'\[([^\]]+)\]|"((?:[^"]|"")+)"|`([^`]+)`|([^.\s]+)', name.strip())
    names = [next(group for group in match if group) for match in parts]
    if not names or len(names) > 3:
        raise ValueError(f"TargetObject '{name}' is not a table name.")
    table = names[-1]
    schema = names[-2] if len(names) >= 2 else None
    return schema, table


# -- types -------------------------------------------------------------------------------------
def sa_type(column: Column, dialect: str, is_key: bool) -> TypeEngine[Any]:
    """The column type a created target table gets for a logical type."""
    kind = column.type
    if kind == "integer":
        # SQLite: exactly INTEGER, so a one-column integer key is the rowid (one B-tree, not two).
        return Integer() if dialect == "sqlite" else BigInteger()
    if kind == "decimal":
        if dialect == "sqlite":
            return Text()  # SQLite's NUMERIC would round to a double: keep the exact digits
        if column.precision:
            return Numeric(column.precision, column.scale or 0, asdecimal=True)
        return mysql.DECIMAL(65, 30) if dialect == "mysql" else Numeric()
    if kind == "float":
        return Float(precision=24) if column.precision == 24 else Double()
    if kind == "boolean":
        return Boolean(create_constraint=False)
    if kind == "date":
        return Date()
    if kind == "time":
        return mysql.TIME(fsp=6) if dialect == "mysql" else Time()
    if kind in ("datetime", "datetimetz"):
        if dialect == "mysql":
            return mysql.DATETIME(fsp=6)  # aware values are stored in UTC
        if dialect == "sqlite" and kind == "datetimetz":
            return Text()
        return DateTime(timezone=kind == "datetimetz")
    if kind == "binary":
        if dialect == "mysql":
            if is_key or (column.length and column.length <= 4096):
                return mysql.VARBINARY(min(column.length or 255, 4096))
            return mysql.LONGBLOB()
        return LargeBinary()
    if kind == "json":
        if dialect == "postgresql":
            return postgresql.JSON()
        return JSON() if dialect == "mysql" and not is_key else Text()
    # string
    if dialect == "mssql":
        # NVARCHAR(MAX) cannot be a key: SQL Server indexes at most 900 bytes (450 characters).
        if is_key:
            return NVARCHAR(min(column.length or 450, 450))
        return NVARCHAR(column.length if column.length and column.length <= 4000 else None)
    if dialect == "mysql":
        if is_key:
            return String(min(column.length or 255, 768))
        if column.length and column.length <= 255:
            return String(column.length)
        return mysql.LONGTEXT()
    return String(column.length) if column.length else Text()


ColumnConverter = Callable[[list[Any]], list[Any]]


def _each(fn: Callable[[Any], Any]) -> ColumnConverter:
    return lambda column: list(map(fn, column))


# SQLite binds dates, times, timestamps and decimals as ISO 8601 / decimal text through these
# adapters, called from C as each value is bound. Converting them before executemany cost a
# transpose and rebuild of every batch (500,000 rows of 10 columns, one a date: 1.65 s of CPU
# for executemany and the conversion, 1.47 s with the adapters). The text is the one sqlite3's
# own defaults for date and datetime give (deprecated since Python 3.12) and the one Django's
# SQLite backend registers for date,
# datetime and Decimal in the same process; time had none. Registering is process-wide and
# changes nothing for code that already sent text.
sqlite3.register_adapter(dt.date, dt.date.isoformat)
sqlite3.register_adapter(dt.datetime, lambda value: value.isoformat(" "))
sqlite3.register_adapter(dt.time, dt.time.isoformat)
sqlite3.register_adapter(decimal.Decimal, str)


def _mysql_value(kind: str) -> ColumnConverter | None:
    if kind in ("datetimetz", "datetime"):
        # MySQL has no zone-aware type: aware values are stored as UTC wall time.
        return _each(
            lambda v: (
                v.astimezone(dt.UTC).replace(tzinfo=None)
                if isinstance(v, dt.datetime) and v.tzinfo
                else v
            )
        )
    return None


def _converters(dialect: str, columns: list[Column]) -> list[tuple[int, ColumnConverter]]:
    pick = {"mysql": _mysql_value}.get(dialect)
    if pick is None:
        return []
    found = []
    for position, column in enumerate(columns):
        fn = pick(column.type)
        if fn is not None:
            found.append((position, fn))
    return found


def _convert(rows: list[tuple], converters: list[tuple[int, ColumnConverter]]) -> list[Any]:
    # Column by column: a row-by-row copy with a call per value cost 2.3 µs a row of 10
    # columns with one date (bench/drive.py); a transpose, one C map per converted column and
    # a zip back cost a fifth of that.
    if not converters or not rows:
        return rows
    columns = [list(map(itemgetter(i), rows)) for i in range(len(rows[0]))]
    for position, convert in converters:
        columns[position] = convert(columns[position])
    return list(zip(*columns, strict=True))


# -- state -------------------------------------------------------------------------------------
def _state_table(metadata: MetaData) -> Table:
    return Table(
        STATE_TABLE,
        metadata,
        SAColumn("writer_guid", String(64), primary_key=True),
        SAColumn("last_execution_id", String(32), nullable=False),
        SAColumn("updated_at", String(40), nullable=False),
    )


def ensure_state(engine: Engine, writer_guid: str) -> None:
    """Create the state table and this writer's row, so applies can lock it."""
    table = _state_table(MetaData())
    with engine.begin() as connection:
        table.create(connection, checkfirst=True)
    try:
        with engine.begin() as connection:
            exists = connection.execute(
                table.select().where(table.c.writer_guid == writer_guid)
            ).first()
            if exists is None:
                connection.execute(
                    table.insert().values(
                        writer_guid=writer_guid, last_execution_id="", updated_at=""
                    )
                )
    except IntegrityError:
        pass  # another worker inserted it first


def _fence_table(metadata: MetaData) -> Table:
    return Table(
        FENCE_TABLE,
        metadata,
        SAColumn("writer_guid", String(64), primary_key=True),
        SAColumn("holder", String(64), nullable=False),
    )


def take_fence(engine: Engine, writer_guid: str, token: str) -> None:
    """Record that the claim `token` writes for this writer from now on, before it applies.

    Committed at once, beside (not under) the state row's lock, so a paused worker holding that
    lock cannot delay it; LeaseLost when a later claim already holds the fence.
    """
    table = _fence_table(MetaData())
    with engine.begin() as connection:
        table.create(connection, checkfirst=True)
    try:
        with engine.begin() as connection:
            row = connection.execute(
                table.select().where(table.c.writer_guid == writer_guid)
            ).first()
            if row is None:
                connection.execute(table.insert().values(writer_guid=writer_guid, holder=token))
                return
            if row.holder > token:
                raise LeaseLost(_fenced_message(row.holder, token))
            connection.execute(
                table.update().where(table.c.writer_guid == writer_guid).values(holder=token)
            )
    except IntegrityError:
        take_fence(engine, writer_guid, token)  # another claim inserted the row first


def _check_fence(connection: Connection, writer_guid: str, token: str) -> None:
    """In the apply's transaction, just before it commits: still this claim's fence? The row
    lock taken here orders this commit before any later claim's take_fence."""
    table = _fence_table(MetaData())
    query = table.select().where(table.c.writer_guid == writer_guid)
    if connection.dialect.name != "sqlite":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is not None and row.holder != token:
        raise LeaseLost(_fenced_message(row.holder, token))


def _fenced_message(holder: str, token: str) -> str:
    return (
        f"The target refused this writer's commit: claim {token} was superseded by {holder} "
        "(the run was taken over while this worker was paused); nothing of it was applied."
    )


def applied_execution_id(engine: Engine, writer_guid: str) -> str:
    """The last ExecutionId this writer committed to the target ('' when none)."""
    table = _state_table(MetaData())
    with engine.connect() as connection:
        row = connection.execute(table.select().where(table.c.writer_guid == writer_guid)).first()
    return row.last_execution_id if row is not None else ""


# -- table -------------------------------------------------------------------------------------
@dataclass
class Target:
    table: Table
    names: list[str]  # target column names in the batch's column order
    upsertable: bool  # a primary key or unique index covers the keys
    # Empty when this apply began and no key conflict met yet: rows may be COPYed straight
    # in (PostgreSQL), no upsert needed.
    appending: bool = False


def prepare_table(
    engine: Engine,
    settings: WriterSettings,
    columns: list[Column],
    keys: list[str],
    *,
    recreate: bool,
    log: Callable[[str], None],
) -> Target:
    """Create the target table from the log's schema when missing (or recreate it)."""
    dialect = engine.dialect.name
    schema, name = parse_target(settings.target_object)
    if dialect == "sqlite":
        schema = None
    with engine.begin() as connection:
        inspector = inspect(connection)
        exists = inspector.has_table(name, schema=schema)
        if exists and not recreate and settings.auto_recreate:
            existing = {c["name"].lower() for c in inspector.get_columns(name, schema=schema)}
            if existing != {c.name.lower() for c in columns}:
                log(f"Target {settings.target_object} has other columns: recreating it.")
                recreate = True
        if exists and recreate:
            Table(name, MetaData(), schema=schema).drop(connection)
            log(f"Dropped target table {settings.target_object}.")
            exists = False
        if not exists:
            table = _new_table(name, schema, columns, keys, dialect)
            table.create(connection)
            log(f"Created target table {settings.target_object} ({len(columns)} columns).")
            return Target(table, [c.name for c in columns], bool(keys))
        return _existing_target(connection, name, schema, columns, keys, settings)


def _new_table(
    name: str, schema: str | None, columns: list[Column], keys: list[str], dialect: str
) -> Table:
    lowered = {k.lower() for k in keys}
    sa_columns = [
        SAColumn(
            c.name,
            sa_type(c, dialect, c.name.lower() in lowered),
            nullable=c.name.lower() not in lowered,
        )
        for c in columns
    ]
    key_names = [c.name for c in columns if c.name.lower() in lowered]
    extra = [PrimaryKeyConstraint(*key_names)] if key_names else []
    return Table(name, MetaData(), *sa_columns, *extra, schema=schema)


def _existing_target(
    connection: Connection,
    name: str,
    schema: str | None,
    columns: list[Column],
    keys: list[str],
    settings: WriterSettings,
) -> Target:
    inspector = inspect(connection)
    existing = {c["name"].lower(): c["name"] for c in inspector.get_columns(name, schema=schema)}
    names = []
    for column in columns:
        found = existing.get(column.name.lower())
        if found is None:
            raise ValueError(
                f"Target table {settings.target_object} has no column '{column.name}' "
                "(use recreate=1 or Options.AutoRecreate to rebuild it)."
            )
        names.append(found)
    table = Table(name, MetaData(), *[SAColumn(n) for n in names], schema=schema)
    wanted = {k.lower() for k in keys}
    unique_sets: list[list[Any]] = [
        inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
    ]
    unique_sets += [
        u["column_names"] for u in inspector.get_unique_constraints(name, schema=schema)
    ]
    unique_sets += [
        i["column_names"] for i in inspector.get_indexes(name, schema=schema) if i.get("unique")
    ]
    upsertable = bool(wanted) and any(
        {str(c).lower() for c in cols} == wanted for cols in unique_sets if cols
    )
    return Target(table, names, upsertable)


# -- statements --------------------------------------------------------------------------------
class _Statements:
    """The target's INSERT / upsert / DELETE, built from SQLAlchemy's dialect constructs.

    Compiled once per apply (one batch shape: the target's columns) into driver SQL with
    positional marks, then run through the driver's executemany or COPY. The table's
    columns are in the batch's column order, so a row tuple is the statement's parameters.
    """

    def __init__(self, engine: Engine, target: Target, keys: list[str]) -> None:
        dialect = engine.dialect
        self.dialect = dialect.name
        self.table = target.table
        preparer = dialect.identifier_preparer
        self.table_sql = preparer.format_table(target.table)
        self.quote = preparer.quote
        self.names = target.names
        by_lower = {n.lower(): n for n in target.names}
        self.keys = [by_lower.get(k.lower(), k) for k in keys]
        self.key_positions = [target.names.index(k) for k in self.keys if k in target.names]
        self.cols = ", ".join(self.quote(n) for n in self.names)
        # Rows are tuples, so statements take positional marks. Named (pyformat) marks would
        # need a dict per row, and PyMySQL only turns `VALUES (%s, …)` into multi-row INSERTs.
        self._dialect: Any = dialect
        if dialect.paramstyle in ("pyformat", "named"):
            self._dialect = type(dialect)(paramstyle="format")  # type: ignore[call-arg]
            # The server decides some forms (MySQL's ON DUPLICATE KEY UPDATE: VALUES() or alias).
            self._dialect.server_version_info = dialect.server_version_info
            if hasattr(dialect, "is_mariadb"):
                self._dialect.is_mariadb = dialect.is_mariadb
        # Every frame asks for its statement, and a source's batch (an HTTP page, a message
        # batch) may be small: compiling is then a large part of a frame's work, so each
        # statement is compiled at its first use only (by kind and staging table).
        self._compiled: dict[tuple[str, str], str] = {}

    def _sql(self, statement: Any) -> str:
        return str(statement.compile(dialect=self._dialect))

    def _once(self, kind: str, source: Table | None, build: Callable[[], str]) -> str:
        key = (kind, source.name if source is not None else "")
        sql = self._compiled.get(key)
        if sql is None:
            sql = self._compiled[key] = build()
        return sql

    def insert(self) -> str:
        return self._once("insert", None, lambda: self._sql(self.table.insert()))

    def upsert(self, source: Table | None = None) -> str:
        """INSERT … ON CONFLICT / ON DUPLICATE KEY UPDATE on the keys, every other column set.

        With `source`, the rows are selected from that table (PostgreSQL's COPY staging).
        """
        return self._once("upsert", source, lambda: self._upsert(source))

    def _upsert(self, source: Table | None) -> str:
        others = [n for n in self.names if n not in self.keys]
        if self.dialect == "mssql":
            return self._merge(others)
        if self.dialect == "mysql":
            mysql_insert = mysql.insert(self.table)
            # No other column: setting a key to itself turns a duplicate into a no-op.
            updates = {n: mysql_insert.inserted[n] for n in others} or {
                self.keys[0]: self.table.c[self.keys[0]]
            }
            return self._sql(mysql_insert.on_duplicate_key_update(updates))
        statement = (
            postgresql.insert(self.table)
            if self.dialect == "postgresql"
            else sqlite.insert(self.table)
        )
        if source is not None:
            statement = statement.from_select(
                self.names, select(*[source.c[n] for n in self.names])
            )
        if not others:
            return self._sql(statement.on_conflict_do_nothing(index_elements=self.keys))
        return self._sql(
            statement.on_conflict_do_update(
                index_elements=self.keys, set_={n: statement.excluded[n] for n in others}
            )
        )

    def _merge(self, others: list[str]) -> str:
        """SQL Server has no INSERT … ON CONFLICT: one MERGE per row (HOLDLOCK: no race).

        SQLAlchemy has no MERGE construct, so this one is written out, quoted by the dialect.
        """
        q = self.quote
        mark = "?" if self._dialect.paramstyle == "qmark" else "%s"
        source = ", ".join(f"{mark} AS {q(n)}" for n in self.names)
        match = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in self.keys)
        update = (
            "WHEN MATCHED THEN UPDATE SET " + ", ".join(f"t.{q(n)} = s.{q(n)}" for n in others)
            if others
            else ""
        )
        values = ", ".join(f"s.{q(n)}" for n in self.names)
        return (
            f"MERGE {self.table_sql} WITH (HOLDLOCK) AS t USING (SELECT {source}) AS s "
            f"ON {match} {update} WHEN NOT MATCHED THEN INSERT ({self.cols}) VALUES ({values});"
        )

    def delete(self, key_names: list[str]) -> str:
        where = and_(*[self.table.c[k] == bindparam(f"k{i}") for i, k in enumerate(key_names)])
        return self._sql(self.table.delete().where(where))


def _dedupe(rows: list[Any], positions: list[int]) -> list[Any]:
    # One INSERT … ON CONFLICT may not touch a row twice: the last change of a key wins.
    if len(positions) == 1:
        p = positions[0]
        latest = {row[p]: row for row in rows}
    else:
        latest = {tuple(row[p] for p in positions): row for row in rows}
    return rows if len(latest) == len(rows) else list(latest.values())


def _chunks(rows: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _set_timeout(connection: Connection, seconds: int) -> None:
    if seconds <= 0:
        return
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(seconds) * 1000}")
    elif connection.dialect.name == "mysql" and getattr(connection.dialect, "is_mariadb", False):
        connection.exec_driver_sql(f"SET SESSION max_statement_time = {int(seconds)}")


def _clear_timeout(connection: Connection, seconds: int) -> None:
    if seconds > 0 and getattr(connection.dialect, "is_mariadb", False):
        connection.exec_driver_sql("SET SESSION max_statement_time = 0")


# -- apply -------------------------------------------------------------------------------------
def apply_change_log(
    engine: Engine,
    path: Path,
    execution_id: str,
    settings: WriterSettings,
    hooks: ApplyHooks,
    *,
    recreate: bool = False,
) -> ApplyResult:
    """Apply one change log in one transaction, with the writer's state row; skip if applied."""
    with ChangeLogReader(path) as log:
        return apply_frames(
            engine, log.header, log.frames(), execution_id, settings, hooks, recreate=recreate
        )


def apply_frames(
    engine: Engine,
    header: Header,
    frames: Iterable[Frame],
    execution_id: str,
    settings: WriterSettings,
    hooks: ApplyHooks,
    *,
    recreate: bool = False,
) -> ApplyResult:
    """Apply a change log's frames in one transaction that also records `execution_id`.

    `frames` may be a file being read or a reader's batches as they are produced; an
    exception from it (or anywhere) rolls the whole transaction back.
    """
    keys = settings.keys or header.keys
    ensure_state(engine, settings.writer_guid)
    if hooks.fence:
        take_fence(engine, settings.writer_guid, hooks.fence)
    if _is_applied(applied_execution_id(engine, settings.writer_guid), execution_id):
        return ApplyResult(applied=False)
    # DDL runs before the data transaction: MySQL commits on DDL, SQLite would wait on
    # its own write lock. The pipeline decides the columns, so ask it with no rows.
    columns = hooks.transform(Batch(header.columns, [])).columns
    target = prepare_table(engine, settings, columns, keys, recreate=recreate, log=hooks.log)
    statements = _Statements(engine, target, keys)
    by_name = {c.name.lower(): c for c in header.columns}
    key_columns = [by_name.get(k.lower(), Column(k)) for k in header.keys]
    state = _state_table(MetaData())
    upserts = deletes = 0
    begin = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
    with begin.begin() as connection:
        _set_timeout(connection, settings.exec_timeout)
        lock = state.select().where(state.c.writer_guid == settings.writer_guid)
        if connection.dialect.name != "sqlite":
            lock = lock.with_for_update()  # a second worker waits here, then skips
        row = connection.execute(lock).first()
        if _is_applied(row.last_execution_id if row is not None else "", execution_id):
            return ApplyResult(applied=False)
        if connection.dialect.name == "postgresql" and target.upsertable:
            # Under the state row's lock: no other writer of this job adds rows meanwhile.
            target.appending = (
                connection.execute(select(1).select_from(target.table).limit(1)).first() is None
            )
        for frame in frames:
            hooks.check_cancel()
            if frame.is_delete:
                if settings.propagate_delete:
                    deletes += _delete(connection, target, key_columns, frame.rows, settings)
            else:
                batch = hooks.transform(Batch(header.columns, frame.rows))
                upserts += _write(connection, target, statements, batch, keys, settings, hooks)
            hooks.progress(upserts, deletes)
        if hooks.fence:
            _check_fence(connection, settings.writer_guid, hooks.fence)
        connection.execute(
            state.update()
            .where(state.c.writer_guid == settings.writer_guid)
            .values(
                last_execution_id=execution_id,
                updated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            )
        )
        _clear_timeout(connection, settings.exec_timeout)
    return ApplyResult(applied=True, upserts=upserts, deletes=deletes)


def _is_applied(done: str, execution_id: str) -> bool:
    return bool(done) and done.isdigit() and int(done) >= int(execution_id)


def _write(
    connection: Connection,
    target: Target,
    statements: _Statements,
    batch: Batch,
    keys: list[str],
    settings: WriterSettings,
    hooks: ApplyHooks,
) -> int:
    rows = _convert(batch.rows, _converters(statements.dialect, batch.columns))
    positions = statements.key_positions
    if keys and not target.upsertable:
        # No unique index to upsert against: delete the keys, then insert.
        key_columns = [batch.columns[p] for p in positions]
        _delete(
            connection,
            target,
            key_columns,
            [tuple(r[p] for p in positions) for r in rows],
            settings,
            converted=True,
        )
    if statements.dialect == "postgresql":
        return _write_postgres(connection, target, statements, rows, keys, settings, hooks)
    sql = statements.upsert() if keys and target.upsertable else statements.insert()
    # SQLite's executemany applies rows one by one, so a repeated key needs no dedupe.
    written = 0
    for chunk in _chunks(rows, max(1, settings.batch_count)):
        connection.exec_driver_sql(
            sql, chunk if isinstance(chunk[0], tuple) else list(map(tuple, chunk))
        )
        written += len(chunk)
        hooks.after_chunk(written)
        hooks.check_cancel()
    return written


def _write_postgres(
    connection: Connection,
    target: Target,
    statements: _Statements,
    rows: list[Any],
    keys: list[str],
    settings: WriterSettings,
    hooks: ApplyHooks,
) -> int:
    raw: Any = connection.connection.dbapi_connection
    quote = statements.quote
    # Rows still as a PostgreSQL source's COPY text go in as they are (same column order: the
    # header's), on a connection that sends them as the UTF-8 they are.
    text = rows.data if isinstance(rows, CopyRows) and raw.info.encoding == "utf-8" else None
    if not (keys and target.upsertable):
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {statements.table_sql} ({statements.cols}) FROM STDIN") as copy,
        ):
            _copy_rows(copy, rows, text)
        hooks.after_chunk(len(rows))
        return len(rows)
    if text is None:
        rows = _dedupe(rows, statements.key_positions)
    if target.appending and _copy_new_rows(raw, statements, rows, text):
        hooks.after_chunk(len(rows))
        hooks.check_cancel()
        return len(rows)
    target.appending = False
    if text is not None:  # decoded (a repeated key made the COPY fail): upserted as tuples
        rows = _dedupe(list(rows), statements.key_positions)
    stage = quote("dz_stage")
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "
            f"SELECT {statements.cols} FROM {statements.table_sql} WITH NO DATA"
        )
        upsert = statements.upsert(
            Table("dz_stage", MetaData(), *[SAColumn(n) for n in statements.names])
        )
        written = 0
        # COPY the whole frame (one reader batch) at once; BatchCount only splits larger ones.
        for chunk in _chunks(rows, max(settings.batch_count, len(rows) or 1)):
            with cursor.copy(f"COPY {stage} ({statements.cols}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
            cursor.execute(upsert)
            cursor.execute(f"TRUNCATE {stage}")
            written += len(chunk)
            hooks.after_chunk(written)
            hooks.check_cancel()
    return written


def _copy_rows(copy: Any, rows: list[Any], text: Any) -> None:
    if text is not None:
        copy.write(text)
        return
    for row in rows:
        copy.write_row(row)


def _copy_new_rows(raw: Any, statements: _Statements, rows: list[Any], text: Any = None) -> bool:
    """COPY rows straight into a target that was empty when this apply began (a first load):
    the server skips the staging table and the upsert, half its work. A key already there (the
    source repeats a key across batches, or within a batch of COPY text) undoes this COPY alone;
    the caller then upserts.
    """
    try:
        with (
            raw.transaction(),
            raw.cursor() as cursor,
            cursor.copy(f"COPY {statements.table_sql} ({statements.cols}) FROM STDIN") as copy,
        ):
            _copy_rows(copy, rows, text)
    except psycopg.errors.UniqueViolation:
        return False
    return True


def _delete(
    connection: Connection,
    target: Target,
    key_columns: list[Column],
    keys: list[tuple],
    settings: WriterSettings,
    *,
    converted: bool = False,
) -> int:
    if not keys:
        return 0
    by_lower = {n.lower(): n for n in target.names}
    names = [by_lower.get(c.name.lower(), c.name) for c in key_columns]
    statements = _Statements(connection.engine, target, names)
    sql = statements.delete(names)
    values = keys if converted else _convert(keys, _converters(statements.dialect, key_columns))
    deleted = 0
    for chunk in _chunks(values, max(1, settings.batch_count)):
        connection.exec_driver_sql(sql, [tuple(v) for v in chunk])
        deleted += len(chunk)
    return deleted

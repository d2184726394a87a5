"""SQL databases (SQLite, PostgreSQL, MySQL/MariaDB) through SQLAlchemy Core.

`url` turns connection strings into engines, `reader` streams a `SqlRead` as typed batches,
`writer` applies change-log frames with each dialect's native upsert and bulk path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from sqlalchemy import Engine, text

from jobs.sync.changelog import Frame, Header
from jobs.sync.spec import ReaderSpec, WriterSpec
from jobs.systems.base import (
    ApplyHooks,
    ApplyResult,
    Connection,
    Pushdown,
    Reader,
    Since,
    UnsupportedSystem,
)
from jobs.systems.batch import Batch
from jobs.systems.db import hashing
from jobs.systems.db.reader import (
    copy_columns,
    estimate_rows,
    read_batches,
    read_copy_batches,
    wrap_since,
)
from jobs.systems.db.url import create_db_engine
from jobs.systems.db.writer import (
    WriterSettings,
    applied_execution_id,
    apply_frames,
    ensure_state,
)

# Changed rows are read by key in statements of at most this many parameters (inside
# PostgreSQL's limit of 65535; PyMySQL binds on the client).
PARAMS_PER_READ = 10_000


class DatabaseReader:
    """A `SqlRead` on one database; the pointer is pushed down as a wrapping WHERE, row digests
    as a wrapping SELECT (jobs.systems.db.hashing)."""

    pushdown = Pushdown(since=True, row_hash=True)

    def __init__(self, engine: Engine, spec: ReaderSpec) -> None:
        if not spec.sql:
            raise UnsupportedSystem(f"Job reader '{spec.job_key}' has no SqlRead.")
        self.engine = engine
        self.spec = spec
        self._columns: list[str] | None = None

    def batches(
        self, *, batch_size: int, limit: int | None = None, since: Since | None = None
    ) -> Iterator[Batch]:
        return self._read(self.spec.sql, batch_size=batch_size, limit=limit, since=since)

    def deleted_keys(self, *, batch_size: int, since: Since | None = None) -> Iterator[Batch]:
        return self._read(self.spec.deleted_sql, batch_size=batch_size, since=since)

    def commit(self) -> None:
        pass  # the pointer strategies keep what a database read needs

    def report_to(self, log: Callable[[str], None]) -> None:
        pass  # the run logs the SQL and its counters; a query has nothing more to say

    # -- RowHashing ----------------------------------------------------------------------------
    def hash_scheme(self) -> str:
        if not hashing.supported(self.engine):
            return ""
        return hashing.scheme(self.engine)

    def hashed_batches(self, *, batch_size: int) -> Iterator[Batch]:
        # PostgreSQL: text COPY lines, kept as they are up to a PostgreSQL target (a first load
        # then makes no Python object per value); decoded for anything else.
        columns = copy_columns(self.engine, self.spec.sql)
        if columns is not None:
            sql = hashing.copy_rows_sql(self.engine, self.spec.sql, [c.name for c in columns])
            return read_copy_batches(self.engine, sql, columns, batch_size=batch_size)
        sql = hashing.hashed_rows_sql(self.engine, self.spec.sql, self._names())
        return read_batches(self.engine, sql, batch_size=batch_size, hashed=True)

    def digests(self, *, keys: list[str], batch_size: int) -> Iterator[Batch]:
        sql = hashing.digest_sql(self.engine, self.spec.sql, keys, self._names())
        return read_batches(self.engine, sql, batch_size=batch_size, hashed=True)

    def rows_by_key(
        self, *, keys: list[str], values: list[tuple], batch_size: int
    ) -> Iterator[Batch]:
        if not values:
            yield self._empty()
            return
        # (rows deleted since the digest pass are simply not found: the next run deletes them)
        step = max(1, PARAMS_PER_READ // len(keys))
        for start in range(0, len(values), step):
            chunk = values[start : start + step]
            sql = hashing.rows_by_key_sql(self.engine, self.spec.sql, keys, len(chunk))
            params = tuple(v for key in chunk for v in key)
            for batch in read_batches(self.engine, sql, params=params, batch_size=batch_size):
                if batch.rows:
                    yield batch

    def _names(self) -> list[str]:
        if self._columns is None:
            self._columns = self._empty().names
        return self._columns

    def _empty(self) -> Batch:
        """No rows, the columns typed as a read types them (from the cursor: the hashing
        dialects type columns without looking at values)."""
        batch = next(read_batches(self.engine, hashing.columns_sql(self.spec.sql), batch_size=1))
        return Batch(batch.columns, [])

    def estimate_rows(self) -> int | None:
        return estimate_rows(self.engine, self.spec.sql)

    def _read(
        self, sql: str, *, batch_size: int, limit: int | None = None, since: Since | None = None
    ) -> Iterator[Batch]:
        if since is None:
            return read_batches(self.engine, sql, batch_size=batch_size, limit=limit)
        return read_batches(
            self.engine,
            wrap_since(self.engine, sql, since.column),
            params=(since.value,),
            batch_size=batch_size,
            limit=limit,
        )


class DatabaseWriter:
    """A `TargetObject` table; the writer's position lives in the target's `_datazen_state`."""

    def __init__(self, engine: Engine, spec: WriterSpec, writer_guid: str) -> None:
        if not spec.target_object:
            raise UnsupportedSystem(f"Job writer '{spec.job_key}' has no TargetObject.")
        self.engine = engine
        self.settings = WriterSettings(
            target_object=spec.target_object,
            writer_guid=writer_guid,
            keys=spec.keys,
            propagate_delete=spec.propagate_delete,
            batch_count=spec.batch_count,
            exec_timeout=spec.exec_timeout,
            auto_recreate=spec.auto_recreate,
        )

    def applied_position(self) -> str:
        ensure_state(self.engine, self.settings.writer_guid)
        return applied_execution_id(self.engine, self.settings.writer_guid)

    def apply(
        self,
        header: Header,
        frames: Iterable[Frame],
        execution_id: str,
        hooks: ApplyHooks,
        *,
        recreate: bool = False,
    ) -> ApplyResult:
        return apply_frames(
            self.engine, header, frames, execution_id, self.settings, hooks, recreate=recreate
        )

    def run_script(self, script: str) -> None:
        with self.engine.begin() as connection:
            connection.exec_driver_sql(script)

    def streams_beside(self, reader: Reader) -> bool:
        # Both sides SQLite are local Python work under one GIL: overlapping them buys nothing
        # measurable (and one file cannot be read and written at once).
        source = getattr(reader, "engine", None)
        return not (
            self.engine.dialect.name == "sqlite"
            and source is not None
            and source.dialect.name == "sqlite"
        )


def _translated(engine: Engine, spec: ReaderSpec) -> ReaderSpec:
    """A reader written for SQL Server (`SystemName` SQLServer) reading another database: its
    `SqlRead` and `DeletedRecordsSQL` are T-SQL, translated as DataRunSQL's are."""
    if spec.sql_dialect != "tsql" or engine.dialect.name == "mssql" or not spec.sql:
        return spec
    # sqlglot takes about a second to import: only runs of such readers pay it.
    from jobs.systems.db.tsql import TranslationError, catalogue_for, translate

    where = f"Job reader '{spec.job_key}'"
    try:
        with engine.connect() as db:
            catalogue = catalogue_for(db)
            sql = translate(
                spec.sql, engine.dialect.name, where=f"{where} SqlRead", catalogue=catalogue
            )
            deleted = (
                translate(
                    spec.deleted_sql,
                    engine.dialect.name,
                    where=f"{where} DeletedRecordsSQL",
                    catalogue=catalogue,
                )
                if spec.deleted_sql
                else ""
            )
    except TranslationError as exc:
        raise UnsupportedSystem(str(exc)) from None
    return replace(spec, sql=sql, deleted_sql=deleted)


class DatabaseSystem:
    def reader(self, connection: Connection, spec: ReaderSpec) -> DatabaseReader:
        engine = create_db_engine(connection.system, connection.value)
        return DatabaseReader(engine, _translated(engine, spec))

    def writer(self, connection: Connection, spec: WriterSpec, writer_guid: str) -> DatabaseWriter:
        return DatabaseWriter(
            create_db_engine(connection.system, connection.value), spec, writer_guid
        )

    def check(self, connection: Connection) -> str:
        engine = create_db_engine(connection.system, connection.value)
        with engine.connect() as db:
            db.execute(text("SELECT 1"))
        return f"{engine.dialect.name} answers"

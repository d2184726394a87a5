"""Components that work on a database connection: DataRunSQL runs; DataSink is kept only.

DataRunSQL loads the batch into a temporary table on its connection (`@pipelinedata()`),
runs `SQLCommand` there (T-SQL translated to the connection's dialect, jobs.systems.db.tsql)
and, with `ReplaceDataSet`, makes the result the batch. DataSink is accepted so exports
round-trip; a pipeline with it enabled fails its run naming it (docs/pipeline.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column as SqlColumn
from sqlalchemy import Connection, Engine, MetaData, Table, Text

from jobs.connections import database_engine
from jobs.pipeline.base import Component, first_of, flag, register
from jobs.pipeline.types import ConversionError, convert
from jobs.systems.batch import Batch, Column
from jobs.systems.db.url import ConnectionStringError
from jobs.systems.values import type_of

if TYPE_CHECKING:
    from jobs.systems.db.tsql import Translation

logger = logging.getLogger(__name__)


class NotRunnable(Component):
    runnable = False
    purpose = ""

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)

    def apply(self, batch: Batch) -> Batch:
        raise self.fail(self.refusal())

    def refusal(self) -> str:
        return (
            f"the {self.name} component ({self.purpose}) is not supported by this gateway; "
            'disable it ("Disabled": true) or remove it from PipelineDef'
        )


def _as_text(value: Any) -> str | None:
    """Values go in as text, so that comparisons behave like T-SQL's implicit conversions
    (an `nvarchar` id compared with a `bigint` one) on every database."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@register
class DataRunSQL(Component):
    name = "DataRunSQL"
    aliases = ("RunSQL",)

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)
        self.sql = str(first_of(config, "SQLCommand", "SqlCommand", "SQL", default="")).strip()
        if not self.sql:
            raise self.fail("SQLCommand is empty")
        self.connection_key = str(first_of(config, "ConnectionKey", default="")).strip()
        if not self.connection_key:
            raise self.fail("ConnectionKey names the database connection the SQL runs on")
        self.replace = flag(config, "ReplaceDataSet")
        self.ignore_errors = flag(config, "IgnoreOnError")
        try:
            self.timeout = int(first_of(config, "ExecTimeout", default=0) or 0)
        except (TypeError, ValueError):
            raise self.fail("ExecTimeout must be a number of seconds") from None
        self._engine: Engine | None = None
        self._translated: dict[tuple[str, tuple[str, ...]], Translation] = {}

    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = database_engine(self.connection_key)
            except ConnectionStringError as exc:
                raise self.fail(str(exc)) from None
        return self._engine

    def statement(self, connection: Connection, table: str, columns: list[str]) -> Translation:
        # sqlglot takes about a second to import: only processes running such a step pay it.
        from jobs.systems.db.tsql import (
            PIPELINE_DATA,
            TEXT,
            TranslationError,
            catalogue_for,
            translate_query,
        )
        from jobs.systems.db.tsql import Table as Known  # (the same module, same reason)

        # The table name is fixed while translating (cached per dialect and batch columns: names
        # resolve against the catalogue and the batch), then made unique per batch.
        dialect = connection.dialect.name
        key = (dialect, tuple(columns))
        if key not in self._translated:
            placeholder = "pipelinedata__batch"
            batch_table = Known(None, placeholder, dict.fromkeys(columns, TEXT))
            try:
                self._translated[key] = translate_query(
                    PIPELINE_DATA.sub(placeholder, self.sql),
                    dialect,
                    where=f"Pipeline step {self.step} (DataRunSQL)",
                    catalogue=catalogue_for(connection, [batch_table]),
                )
            except TranslationError as exc:
                raise self.fail(str(exc).split(": ", 1)[-1]) from None
        translated = self._translated[key]
        return replace(translated, sql=translated.sql.replace("pipelinedata__batch", table))

    def apply(self, batch: Batch) -> Batch:
        try:
            return self._run(batch)
        except Exception as exc:
            if not self.ignore_errors:
                if isinstance(exc, ValueError) and str(exc).startswith("Pipeline step"):
                    raise
                raise self.fail(f"the SQL failed on '{self.connection_key}': {exc}") from exc
            logger.warning("DataRunSQL step %s failed and IgnoreOnError is set: %s", self.step, exc)
            return batch

    def _run(self, batch: Batch) -> Batch:
        engine = self.engine()
        dialect = engine.dialect.name
        name = f"pipelinedata_{uuid.uuid4().hex[:12]}"
        table_name = f"#{name}" if dialect == "mssql" else name
        table = Table(
            table_name,
            MetaData(),
            *(SqlColumn(c.name, Text) for c in batch.columns),
            prefixes=[] if dialect == "mssql" else ["TEMPORARY"],
        )
        with engine.begin() as connection:
            if self.timeout and dialect == "postgresql":
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {self.timeout * 1000}")
            table.create(connection)
            translated = self.statement(connection, table_name, batch.names)
            sql = translated.sql
            try:
                if batch.rows:
                    names = batch.names
                    connection.execute(
                        table.insert(),
                        [
                            {n: _as_text(v) for n, v in zip(names, row, strict=True)}
                            for row in batch.rows
                        ],
                    )
                result = connection.exec_driver_sql(sql)
                if result.returns_rows:
                    out_names = list(result.keys())
                    out_rows = [tuple(row) for row in result.fetchall()]
                else:
                    out_names, out_rows = [], []
            finally:
                table.drop(connection)
        if not self.replace:
            return batch
        if not out_names:
            raise self.fail("ReplaceDataSet is set but the SQL returned no result set")
        return self._typed(batch, out_names, out_rows, translated.markup)

    def _typed(
        self, batch: Batch, names: list[str], rows: list[tuple], markup: frozenset[str]
    ) -> Batch:
        """Columns named like an input column get its type back; others are typed by value."""
        columns: list[Column] = []
        for position, name in enumerate(names):
            try:
                source = batch.columns[batch.index(name)]
            except KeyError:
                columns.append(
                    Column(
                        name,
                        type_of(row[position] for row in rows),
                        markup=name.lower() in markup,
                    )
                )
                continue
            columns.append(
                Column(
                    name,
                    source.type,
                    source.nullable,
                    source.length,
                    source.precision,
                    source.scale,
                    markup=name.lower() in markup,
                )
            )
        converted = []
        try:
            for row in rows:
                converted.append(
                    tuple(
                        convert(value, column) for value, column in zip(row, columns, strict=True)
                    )
                )
        except ConversionError as exc:
            raise self.fail(f"a result value does not fit its column's type: {exc}") from None
        return Batch(columns, converted)


@register
class DataSink(NotRunnable):
    name = "DataSink"
    aliases = ("Sink",)
    purpose = "copies the batch into a table on a database connection"

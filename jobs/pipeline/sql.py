"""Running the shared expression language (jobs.expressions) over a batch, fast.

Simple expressions are evaluated column by column (jobs.pipeline.fastsql, same answers as
SQLite); the rest go to the SQLite sandbox with only the columns they name, and one that names
no column and is not random is evaluated once per batch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import compress
from operator import itemgetter
from typing import Any

from jobs.expressions import (
    CompiledCondition,
    CompiledExpression,
    compile_condition,
    compile_expression,
)
from jobs.pipeline.fastsql import NUMERIC, FastExpression, Unsupported, Values
from jobs.systems.batch import Batch

# String literals first, so that words inside them are not taken for column names.
_TOKENS = re.compile(
    r"'(?:[^']|'')*'"
    r'|"((?:[^"]|"")*)"'
    r"|\[([^\]]*)\]"
    r"|`((?:[^`]|``)*)`"
    r"|([A-Za-z_][A-Za-z0-9_$]*)"
)
_VOLATILE = re.compile(r"\b(random|enzo_newguid)\s*\(", re.IGNORECASE)


def referenced_names(expression: str) -> set[str]:
    """Every identifier the expression could mean as a column, lowercased."""
    names: set[str] = set()
    for match in _TOKENS.finditer(expression):
        double, bracket, backtick, bare = match.groups()
        if double is not None:
            names.add(double.replace('""', '"').lower())
        elif bracket is not None:
            names.add(bracket.lower())
        elif backtick is not None:
            names.add(backtick.replace("``", "`").lower())
        elif bare is not None:
            names.add(bare.lower())
    return names


class ColumnCache:
    """Columns already pulled out of a batch's rows, shared by one pipeline's steps.

    A filter's kept rows keep their columns (compressed, not pulled out again) and a dynamic
    column's values are known, so the next step reads them from here. Entries are tied to
    the identity of the rows list they came from, and the cache lives for one `apply`.
    """

    def __init__(self) -> None:
        self.rows: list[tuple] | None = None
        self.columns: dict[int, Values] = {}

    def column(self, rows: list[tuple], position: int) -> Values:
        if rows is not self.rows:
            self.rows, self.columns = rows, {}
        found = self.columns.get(position)
        if found is None:
            found = self.columns[position] = Values.column(list(map(itemgetter(position), rows)))
        return found

    def filtered(self, before: list[tuple], keep: list[Any], after: list[tuple]) -> None:
        if before is not self.rows:
            return
        # The kept rows' types are among the batch's: a superset is a safe answer.
        self.columns = {
            position: Values(list(compress(values.values, keep)), values.kinds)  # type: ignore[arg-type]
            for position, values in self.columns.items()
            if not values.is_const
        }
        self.rows = after

    def appended(
        self, before: list[tuple], after: list[tuple], values: list[Any], kinds: frozenset[type]
    ) -> None:
        kept = self.columns if before is self.rows else {}
        position = len(after[0]) - 1 if after else 0
        self.rows, self.columns = after, {**kept, position: Values(values, kinds)}


_local = threading.local()


@contextmanager
def column_cache() -> Iterator[ColumnCache]:
    """Share pulled-out columns between the steps of one pipeline run over one batch."""
    cache = _local.cache = ColumnCache()
    try:
        yield cache
    finally:
        _local.cache = None


def current_cache() -> ColumnCache | None:
    return getattr(_local, "cache", None)


class BatchExpression:
    """An expression or condition compiled per column layout, evaluated on whole batches."""

    def __init__(self, expression: str, *, condition: bool, fast: bool = True) -> None:
        self.expression = expression
        self.condition = condition
        self.names = referenced_names(expression)
        self.volatile = bool(_VOLATILE.search(expression))
        self.fast: FastExpression | None = None
        if fast:
            try:
                self.fast = FastExpression(expression)
            except Unsupported:
                self.fast = None
        self._compiled: dict[tuple[str, ...], tuple[list[int], Any]] = {}

    def check(self) -> None:
        """Compile it once with every identifier it uses standing for a column, so syntax
        errors and refused constructs are reported when the job is saved, not when it runs.
        Raises ExpressionError."""
        names = sorted(self.names)
        if self.condition:
            compile_condition(self.expression, names)
        else:
            compile_expression(self.expression, names)

    def _for(self, batch: Batch) -> tuple[list[int], CompiledExpression | CompiledCondition]:
        layout = tuple(batch.names)
        found = self._compiled.get(layout)
        if found is None:
            positions = [i for i, name in enumerate(layout) if name.lower() in self.names]
            used = [layout[i] for i in positions]
            compiled: CompiledExpression | CompiledCondition = (
                compile_condition(self.expression, used)
                if self.condition
                else compile_expression(self.expression, used)
            )
            found = self._compiled[layout] = (positions, compiled)
        return found

    def _project(self, batch: Batch, positions: list[int]) -> list[tuple]:
        if len(positions) == len(batch.columns):
            return batch.rows
        if len(positions) == 1:
            (only,) = positions
            return [(row[only],) for row in batch.rows]
        return [tuple(row[i] for i in positions) for row in batch.rows]

    def _fast(self, batch: Batch) -> Values | None:
        """The fast path's answer for this batch, or None when SQLite must answer."""
        if self.fast is None or not batch.rows:
            return None
        # Compile through SQLite once per layout anyway: it reports a wrong column name or a
        # refused construct with the same words whichever path evaluates the rows.
        self._for(batch)
        cache = current_cache()
        columns: dict[str, Values] = {}
        try:
            for i, name in enumerate(n.lower() for n in batch.names):
                if name in self.fast.names:
                    columns[name] = (
                        cache.column(batch.rows, i)
                        if cache is not None
                        else Values.column(list(map(itemgetter(i), batch.rows)))
                    )
            return self.fast.evaluate(columns, len(batch.rows))
        except Unsupported:
            return None

    def values(self, batch: Batch) -> tuple[list[Any], frozenset[type] | None]:
        """One value per row of the batch, and their Python types when already known."""
        answer = self._fast(batch)
        if answer is not None:
            if bool in answer.kinds:
                return answer.result(len(batch.rows)), None
            return answer.expand(len(batch.rows)), answer.kinds
        positions, compiled = self._for(batch)
        assert isinstance(compiled, CompiledExpression)
        if not positions and not self.volatile:
            # Constant for the batch ('DATAZEN', #utcnow()): one evaluation serves every row.
            value = compiled.evaluate([()])[0] if batch.rows else None
            return [value] * len(batch.rows), frozenset({type(value)})
        return compiled.evaluate(self._project(batch, positions)), None

    def keep(self, batch: Batch) -> list[tuple]:
        """The rows for which the condition holds (NULL is false)."""
        answer = self._fast(batch)
        if answer is not None and answer.kinds <= NUMERIC:
            if answer.is_const:
                return list(batch.rows) if answer.const else []
            kept = list(compress(batch.rows, answer.values))  # type: ignore[arg-type]
            cache = current_cache()
            if cache is not None:
                cache.filtered(batch.rows, answer.values, kept)  # type: ignore[arg-type]
            return kept
        positions, compiled = self._for(batch)
        assert isinstance(compiled, CompiledCondition)
        if not positions and not self.volatile:
            verdict = bool(compiled.matches([()])[0]) if batch.rows else False
            return list(batch.rows) if verdict else []
        return list(compress(batch.rows, compiled.matches(self._project(batch, positions))))

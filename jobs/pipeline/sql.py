"""Running the shared expression language (jobs.expressions) over a batch, fast.

Only the columns an expression names are copied into the SQLite sandbox, and an expression
that names no column and is not random is evaluated once per batch.
"""

from __future__ import annotations

import re
from typing import Any

from jobs.batch import Batch
from jobs.expressions import (
    CompiledCondition,
    CompiledExpression,
    compile_condition,
    compile_expression,
)

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


class BatchExpression:
    """An expression or condition compiled per column layout, evaluated on whole batches."""

    def __init__(self, expression: str, *, condition: bool) -> None:
        self.expression = expression
        self.condition = condition
        self.names = referenced_names(expression)
        self.volatile = bool(_VOLATILE.search(expression))
        self._compiled: dict[tuple[str, ...], tuple[list[int], Any]] = {}

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

    def values(self, batch: Batch) -> list[Any]:
        """One value per row of the batch."""
        positions, compiled = self._for(batch)
        assert isinstance(compiled, CompiledExpression)
        if not positions and not self.volatile:
            # Constant for the batch ('DATAZEN', #utcnow()): one evaluation serves every row.
            value = compiled.evaluate([()])[0] if batch.rows else None
            return [value] * len(batch.rows)
        return compiled.evaluate(self._project(batch, positions))

    def matches(self, batch: Batch) -> list[bool]:
        """Whether the condition holds for each row (NULL is false)."""
        positions, compiled = self._for(batch)
        assert isinstance(compiled, CompiledCondition)
        if not positions and not self.volatile:
            verdict = bool(compiled.matches([()])[0]) if batch.rows else False
            return [verdict] * len(batch.rows)
        return compiled.matches(self._project(batch, positions))

"""DataDynamicColumn: add or replace a column computed by a SQL or an Enzo expression."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, cast

from jobs.expressions import ExpressionError
from jobs.pipeline import enzo
from jobs.pipeline.base import Component, first_of, flag, register
from jobs.pipeline.sql import BatchExpression, current_cache
from jobs.pipeline.types import ConversionError, convert_all, make_column
from jobs.systems.batch import Batch

# Tuple + 1-tuple through the sequence protocol directly (operator.add tries numbers first).
_concat = cast(Callable[[tuple, tuple], tuple], operator.concat)


def is_enzo(expression_type: str) -> bool:
    """ "Enzo Expression (Enzo Functions)" vs "SQL Expression (SQL Only)" (or 1 / 0)."""
    text = str(expression_type or "").strip().lower()
    return text.startswith("enzo") or text == "1"


@register
class DataDynamicColumn(Component):
    name = "DataDynamicColumn"
    aliases = ("DynamicColumn", "DataDerivedColumn")

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)
        self.column_name = str(first_of(config, "ColumnName", "Column", default="")).strip()
        if not self.column_name:
            raise self.fail("ColumnName is empty")
        text = str(first_of(config, "SQLExpression", "Expression", default="")).strip()
        if not text:
            raise self.fail(f"column '{self.column_name}' has no SQLExpression")
        self.expression_text = text
        if is_enzo(first_of(config, "ExpressionType", default="")):
            try:
                text = enzo.to_sql(text)
            except ValueError as exc:
                raise self.fail(str(exc)) from None
        max_length = first_of(config, "MaxLength", default=0)
        if isinstance(max_length, bool) or not isinstance(max_length, int | float | str):
            raise self.fail(f"MaxLength of column '{self.column_name}' must be a number")
        try:
            self.column = make_column(
                self.column_name,
                str(first_of(config, "DataType", default="String")),
                int(max_length or 0),
            )
        except (ValueError, OverflowError) as exc:
            raise self.fail(str(exc)) from None
        self.ignore_if_exists = flag(config, "IgnoreIfExists")
        self.expression = BatchExpression(text, condition=False)
        try:
            self.expression.check()
        except ExpressionError as exc:
            raise self.fail(f"column '{self.column_name}': {exc}") from None

    def apply(self, batch: Batch) -> Batch:
        try:
            position: int | None = batch.index(self.column_name)
        except KeyError:
            position = None
        if position is not None and self.ignore_if_exists:
            return batch
        try:
            values, kinds = self.expression.values(batch)
        except ExpressionError as exc:
            raise self.fail(f"column '{self.column_name}': {exc}") from None
        column = self.column
        try:
            converted = convert_all(values, column, kinds)
        except ConversionError as exc:
            raise self.fail(f"column '{self.column_name}': {exc}") from None
        if position is None:
            columns = [*batch.columns, column]
            # tuple + 1-tuple, all in C: appending is the bulk of this component's cost.
            rows = list(map(_concat, batch.rows, zip(converted)))
            cache = current_cache()
            if cache is not None and kinds is not None and converted is values:
                cache.appended(batch.rows, rows, converted, kinds)
        else:
            columns = list(batch.columns)
            columns[position] = column
            rows = [
                (*row[:position], value, *row[position + 1 :])
                for row, value in zip(batch.rows, converted, strict=True)
            ]
        return Batch(columns, rows)

"""Components that reshape the column list: DataApplySchema and DataRemoveColumns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from jobs.pipeline.base import Component, first_of, flag, name_list, register
from jobs.pipeline.types import ConversionError, convert, convert_all, make_column
from jobs.systems.batch import Batch, Column

_SCHEMA_LINE = re.compile(r"^\s*([A-Za-z][\w]*(?:\[\])?(?:\s*\([^)]*\))?)\s+(.+?)\s*$")
_PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


@dataclass(frozen=True)
class SchemaField:
    column: Column
    # Text after `||`: the value used when the column is missing or null. `{{name}}` is
    # replaced by that column's value in the same row.
    default: str | None


def parse_schema(text: str) -> list[SchemaField]:
    """`SchemaDefinition` lines, one column each: `long id`, `string(50) name||{{other}}`."""
    fields: list[SchemaField] = []
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "--")):
            continue
        body, _, default = line.partition("||")
        match = _SCHEMA_LINE.match(body)
        if match is None:
            raise ValueError(f"schema line {number} '{line}' is not '<type> <column>'")
        name = match.group(2).strip().strip('[]"`')
        try:
            column = make_column(name, match.group(1))
        except ValueError as exc:
            raise ValueError(f"schema line {number} '{line}': {exc}") from None
        fields.append(SchemaField(column, default if "||" in line else None))
    if not fields:
        raise ValueError("SchemaDefinition lists no columns")
    return fields


def render_default(template: str, batch: Batch, row: tuple) -> Any:
    """A default: `{{col}}` alone gives that column's value as is; otherwise text."""
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole:
        return _value_of(whole.group(1), batch, row)

    def substitute(match: re.Match[str]) -> str:
        value = _value_of(match.group(1), batch, row)
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(substitute, template)


def _value_of(name: str, batch: Batch, row: tuple) -> Any:
    try:
        return row[batch.index(name)]
    except KeyError:
        return None


@register
class DataApplySchema(Component):
    """Give the batch the declared columns and types: convert, add, and (optionally) drop."""

    name = "DataApplySchema"
    aliases = ("ApplySchema",)

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)
        try:
            self.fields = parse_schema(str(first_of(config, "SchemaDefinition", "Schema") or ""))
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        self.remove_others = flag(config, "RemoveIfNotInList")
        self.must_succeed = flag(config, "MustSucceed")

    def apply(self, batch: Batch) -> Batch:
        # Each output column: where its value comes from (a position or None) and, for schema
        # columns, the field that types it. Listed columns keep their place unless the
        # others are removed, in which case the schema's order is the batch's order.
        by_position: dict[int, SchemaField] = {}
        missing: list[SchemaField] = []
        ordered: list[tuple[int | None, SchemaField]] = []
        for field in self.fields:
            try:
                position: int | None = batch.index(field.column.name)
            except KeyError:
                position = None
            ordered.append((position, field))
            if position is None:
                missing.append(field)
            else:
                by_position[position] = field
        plan: list[tuple[int | None, SchemaField | None]]
        if self.remove_others:
            plan = list(ordered)
        else:
            plan = [(i, by_position.get(i)) for i in range(len(batch.columns))]
            plan += [(None, field) for field in missing]
        columns = [
            field.column if field is not None else batch.columns[i]  # type: ignore[index]
            for i, field in plan
        ]
        if not batch.rows:
            return Batch(columns, [])
        # Column at a time: values that already have their type are not converted again.
        out = []
        for position, typed in plan:
            count = len(batch.rows)
            values = (
                list(map(itemgetter(position), batch.rows))
                if position is not None
                else [None] * count
            )
            if typed is not None:
                if typed.default is not None and None in values:
                    values = [
                        render_default(typed.default, batch, row) if value is None else value
                        for value, row in zip(values, batch.rows, strict=True)
                    ]
                values = self._convert(values, typed.column)
            out.append(values)
        return Batch(columns, list(zip(*out, strict=True)))

    def _convert(self, values: list[Any], column: Column) -> list[Any]:
        try:
            return convert_all(values, column)
        except ConversionError:
            pass
        converted = []
        for number, value in enumerate(values, 1):
            try:
                converted.append(convert(value, column))
            except ConversionError as exc:
                if self.must_succeed:
                    raise self.fail(f"row {number}, column '{column.name}': {exc}") from None
                converted.append(None)
        return converted


@register
class DataRemoveColumns(Component):
    """Drop the named columns; names that are not in the batch are ignored."""

    name = "DataRemoveColumns"
    aliases = ("RemoveColumns", "DataRemoveColumn", "RemoveColumn", "DataColumnRemove")

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)
        self.names = name_list(first_of(config, "Columns", "ColumnNames", "ColumnName", "Column"))
        if not self.names:
            raise self.fail("no columns to remove (set Columns)")

    def apply(self, batch: Batch) -> Batch:
        drop = {name.lower() for name in self.names}
        kept = [i for i, column in enumerate(batch.columns) if column.name.lower() not in drop]
        if len(kept) == len(batch.columns):
            return batch
        if not kept:
            return Batch([], [() for _ in batch.rows])
        pick = itemgetter(*kept)
        rows = list(map(pick, batch.rows)) if len(kept) > 1 else [(pick(r),) for r in batch.rows]
        return Batch([batch.columns[i] for i in kept], rows)

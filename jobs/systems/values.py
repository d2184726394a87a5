"""Typing untyped values (HTTP pages, messages, a SQL step's result rows) as batch columns.

A column's logical type (jobs.systems.batch.LOGICAL_TYPES) is read from the Python types of
its values, then every value is made that type or refused. One place, so that a field typed
from an HTTP page, from a message and from a pipeline step's result is typed the same way.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterable
from typing import Any

# Value types a column takes as they are (anything else goes through coerce): readers check a
# whole column against these at C speed and take the usual page or batch without coercing.
AS_IS = {
    "string": frozenset({str, type(None)}),
    "integer": frozenset({int, type(None)}),
    "float": frozenset({float, type(None)}),
    "boolean": frozenset({bool, type(None)}),
}


def logical_type(kinds: Iterable[type]) -> str:
    """The logical type of a column whose values have these Python types (None aside)."""
    seen = set(kinds) - {type(None)}
    if not seen:
        return "string"
    if seen == {bool}:
        return "boolean"
    if seen == {int}:
        return "integer"
    if seen <= {int, float}:
        return "float"
    if seen <= {int, decimal.Decimal}:
        return "decimal"
    if seen == {dt.datetime}:
        return "datetime"
    if seen == {dt.date}:
        return "date"
    return "string"


def type_of(values: Iterable[Any]) -> str:
    """The logical type of a column holding these values."""
    return logical_type(map(type, values))


class Mismatch(ValueError):
    """A value that is not of its column's type; the caller words the refusal for its users."""

    def __init__(self, name: str, kind: str, value: Any) -> None:
        super().__init__(f"column {name!r} is {kind} but holds {value!r}")
        self.name, self.kind, self.value = name, kind, value


def coerce(value: Any, kind: str, name: str, *, parse_text: bool = False) -> Any:
    """`value` as a `kind` column's value (kind one of AS_IS's), or Mismatch. Text stays text
    unless `parse_text` (XML leaves, which are text: numbers and booleans as written)."""
    if value is None:
        return None
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
        return str(value)
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if parse_text and isinstance(value, str):
        try:
            if kind == "integer":
                return int(value)
            if kind == "float":
                return float(decimal.Decimal(value))
            if kind == "boolean" and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
        except (ValueError, decimal.InvalidOperation):
            pass
    raise Mismatch(name, kind, value)

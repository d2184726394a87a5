"""The DataFlux data types: converting request values in, checking them, rendering outputs."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from dataclasses import dataclass
from typing import Any

TYPES = ("string", "integer", "boolean", "date", "real", "decimal")

_INTEGER = re.compile(r"^[+-]?\d+$")
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


@dataclass(frozen=True)
class Field:
    """A typed field of a data table (or a typed macro)."""

    name: str
    type: str = "string"
    max_chars: int | None = None
    required: bool = False

    def metadata(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "string" and self.max_chars is not None:
            entry["maxChars"] = self.max_chars
        return entry


class ConversionError(ValueError):
    """A value that is not of its declared type; the message says what was expected."""


def convert(value: Any, field: Field) -> Any:
    """`value` from JSON as the Python value of the field's type (None stays None)."""
    if value is None:
        return None
    kind = field.type
    if kind == "string" and type(value) is str:
        if field.max_chars is not None and len(value) > field.max_chars:
            raise ConversionError(
                f"is {len(value)} characters long, more than maxChars {field.max_chars}"
            )
        return value
    if isinstance(value, dict | list):
        raise ConversionError(f"expected a {kind} value, got a JSON {type(value).__name__}")
    if kind == "string":
        text = _as_text(value)
        if field.max_chars is not None and len(text) > field.max_chars:
            raise ConversionError(
                f"is {len(text)} characters long, more than maxChars {field.max_chars}"
            )
        return text
    if kind == "integer":
        if isinstance(value, bool):
            raise ConversionError(f"expected an integer, got {_show(value)}")
        number: int | None = None
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INTEGER.match(value.strip()):
            number = int(value.strip())
        if number is None:
            raise ConversionError(f"expected an integer, got {_show(value)}")
        if not INT_MIN <= number <= INT_MAX:
            raise ConversionError(f"integer {_show(value)} is out of the 64-bit range")
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConversionError(f"expected a boolean (true or false), got {_show(value)}")
    if kind == "date":
        if isinstance(value, str):
            try:
                return parse_date(value)
            except ValueError:
                pass
        raise ConversionError(f"expected a date (YYYY-MM-DD), got {_show(value)}")
    if kind == "real":
        real = float(_number(value, kind))
        if not math.isfinite(real):
            raise ConversionError(f"expected a finite real number, got {_show(value)}")
        return real
    if kind == "decimal":
        given = _number(value, kind)
        exact = given if isinstance(given, decimal.Decimal) else decimal.Decimal(str(given))
        if not exact.is_finite():
            raise ConversionError(f"expected a finite decimal number, got {_show(value)}")
        return exact
    raise ConversionError(f"unknown type {kind!r}")


def render(value: Any, field: Field) -> Any:
    """A flow value as the JSON of its declared output type; values that do not fit give None."""
    if value is None:
        return None
    kind = field.type
    try:
        if kind == "string":
            return _as_text(value)
        if kind == "integer":
            return int(value) if not isinstance(value, str) else int(decimal.Decimal(value))
        if kind == "boolean":
            if isinstance(value, str):
                return value.strip().lower() in _TRUE
            return bool(value)
        if kind == "date":
            if isinstance(value, dt.date):
                return value.isoformat()[:10]
            return parse_date(str(value)).isoformat()
        if kind in ("real", "decimal"):
            number = float(value)
            return number if math.isfinite(number) else None
    except (ValueError, TypeError, ArithmeticError):
        return None
    return value


def macro_text(value: Any) -> str | None:
    """Macro values travel as strings, as DataFlux passes them to the platform."""
    return None if value is None else _as_text(value)


def parse_date(text: str) -> dt.date:
    text = text.strip()
    if len(text) > 10 and text[10] in "T ":
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    return dt.date.fromisoformat(text)


def _as_text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _number(value: Any, kind: str) -> int | float | decimal.Decimal:
    if isinstance(value, bool):
        raise ConversionError(f"expected a {kind} number, got {_show(value)}")
    if isinstance(value, int | float | decimal.Decimal):
        return value
    if isinstance(value, str):
        try:
            return decimal.Decimal(value.strip())
        except decimal.InvalidOperation:
            pass
    raise ConversionError(f"expected a {kind} number, got {_show(value)}")


def _show(value: Any) -> str:
    text = (
        repr(value)
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )
    return text if len(text) <= 40 else text[:37] + "..."


def count_rows(outputs: dict[str, Any] | None) -> int:
    """Rows in a run's output data tables (an Execution's record count)."""
    if not outputs:
        return 0
    return sum(len(v.get("data", [])) for v in outputs.values() if isinstance(v, dict))

"""Vendor type names (DataType, schema lines) → the engine's logical column types, and the
value conversions between them."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from typing import Any

from jobs.systems.batch import Column

# DataZen writes .NET-ish names ("String", "DateTime", "Int64") in DataDynamicColumn and
# C#-style keywords ("long", "string(50)") in DataApplySchema; both land here, lowercased.
VENDOR_TYPES: dict[str, str] = {
    "string": "string",
    "str": "string",
    "text": "string",
    "char": "string",
    "varchar": "string",
    "nvarchar": "string",
    "guid": "string",
    "uniqueidentifier": "string",
    "int": "integer",
    "int16": "integer",
    "int32": "integer",
    "int64": "integer",
    "integer": "integer",
    "long": "integer",
    "short": "integer",
    "byte": "integer",
    "bigint": "integer",
    "smallint": "integer",
    "tinyint": "integer",
    "decimal": "decimal",
    "numeric": "decimal",
    "money": "decimal",
    "double": "float",
    "float": "float",
    "single": "float",
    "real": "float",
    "bool": "boolean",
    "boolean": "boolean",
    "bit": "boolean",
    "date": "date",
    "time": "time",
    "timespan": "time",
    "datetime": "datetime",
    "datetime2": "datetime",
    "timestamp": "datetime",
    "datetimeoffset": "datetimetz",
    "datetimetz": "datetimetz",
    "byte[]": "binary",
    "binary": "binary",
    "bytes": "binary",
    "varbinary": "binary",
    "json": "json",
    "object": "json",
}

_TYPE_SPEC = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*(?:\[\])?)\s*(?:\(\s*([^)]*)\))?\s*$")


class ConversionError(ValueError):
    """A value that cannot be converted to the column's type."""


def parse_type(spec: str) -> tuple[str, int | None, int | None]:
    """`string(50)` → ("string", 50, None); `decimal(18,2)` → ("decimal", 18, 2)."""
    spec = re.sub(r"^\s*system\.", "", spec or "", flags=re.IGNORECASE)  # .NET's System.Int64
    match = _TYPE_SPEC.match(spec)
    if match is None:
        raise ValueError(f"'{spec}' is not a type (e.g. string, string(50), long, datetime)")
    name, args = match.group(1).lower(), match.group(2)
    logical = VENDOR_TYPES.get(name)
    if logical is None:
        raise ValueError(f"unknown data type '{match.group(1)}'")
    first = second = None
    if args:
        numbers = [part.strip() for part in args.split(",")]
        try:
            first = int(numbers[0]) if numbers[0].lower() != "max" else None
            second = int(numbers[1]) if len(numbers) > 1 else None
        except ValueError:
            raise ValueError(f"'{spec}': the size must be a number") from None
    return logical, first, second


def make_column(name: str, spec: str, max_length: int | None = None) -> Column:
    """A Column for a vendor type; MaxLength ≤ 0 means unbounded, as DataZen writes it."""
    logical, first, second = parse_type(spec)
    if logical == "string":
        length = first if first is not None else max_length
        return Column(name, "string", length=length if length and length > 0 else None)
    if logical == "decimal":
        return Column(name, "decimal", precision=first, scale=second)
    return Column(name, logical)


_TRUE = {"true", "1", "yes", "y", "t", "on"}
_FALSE = {"false", "0", "no", "n", "f", "off"}


def _parse_datetime(text: str) -> dt.datetime:
    cleaned = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # .NET writes seven fraction digits; Python reads at most six.
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)
    try:
        return dt.datetime.fromisoformat(cleaned)
    except ValueError:
        raise ConversionError(f"'{text}' is not a date and time") from None


def convert(value: Any, column: Column) -> Any:
    """`value` as `column.type`; None stays None. Raises ConversionError."""
    if value is None:
        return None
    kind = column.type
    try:
        if kind == "string":
            text = _to_text(value)
            return text[: column.length] if column.length else text
        if kind == "integer":
            return _to_int(value)
        if kind == "float":
            if isinstance(value, str) and not value.strip():
                return None
            return float(value)
        if kind == "decimal":
            number = decimal.Decimal(str(value).strip())
            if column.scale is not None:
                number = number.quantize(decimal.Decimal(1).scaleb(-column.scale))
            return number
        if kind == "boolean":
            return _to_bool(value)
        if kind in ("datetime", "datetimetz"):
            moment = value if isinstance(value, dt.datetime) else None
            if moment is None and isinstance(value, dt.date):
                moment = dt.datetime(value.year, value.month, value.day)
            if moment is None:
                moment = _parse_datetime(str(value))
            if kind == "datetimetz" and moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return moment
        if kind == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            return _parse_datetime(str(value)).date()
        if kind == "time":
            if isinstance(value, dt.time):
                return value
            if isinstance(value, dt.datetime):
                return value.time()
            return dt.time.fromisoformat(str(value).strip())
        if kind == "binary":
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value)
            return str(value).encode()
        if kind == "json":
            if isinstance(value, str):
                json.loads(value)
            return value
    except ConversionError:
        raise
    except (ValueError, TypeError, ArithmeticError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{value!r} is not a valid {kind}: {exc}") from None
    return value


_ALREADY = {
    "string": frozenset({str, type(None)}),
    "integer": frozenset({int, type(None)}),
    "float": frozenset({float, type(None)}),
}


def convert_all(
    values: list[Any], column: Column, kinds: frozenset[type] | None = None
) -> list[Any]:
    """`convert` over a column's values, skipping the work when they already have the type."""
    kinds = kinds if kinds is not None else frozenset(map(type, values))
    if kinds <= _ALREADY.get(column.type, frozenset()) and not (
        column.type == "string" and column.length
    ):
        return values
    if column.type == "float" and kinds <= {int, float, type(None)}:
        return [None if v is None else float(v) for v in values]
    return [convert(value, column) for value in values]


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ConversionError(f"{value!r} is not a whole number")
        return int(value)
    number = decimal.Decimal(str(value).strip())
    if number != number.to_integral_value():
        raise ConversionError(f"{value!r} is not a whole number")
    return int(number)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | decimal.Decimal):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConversionError(f"{value!r} is not a boolean")

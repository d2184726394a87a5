"""Files → typed batches, one reader per format, streamed with bounded memory.

CSV and Parquet go through pyarrow's streaming readers (a block or a row group at a time) and
become the engine's batches at this boundary (`arrow_batch`); JSON lines are read a line at a
time and JSON arrays decoded element by element; Excel worksheets are read a row at a time
by openpyxl's read-only mode; XML documents are parsed whole (they are capped in size) and
their rows selected with the `TxDocumentRootPath` language.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any
from xml.etree.ElementTree import ParseError
from zipfile import BadZipFile

import pyarrow as pa
import pyarrow.compute as pc  # at import, not inside the first run (0.4 s to load)
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings as django_settings
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from jobs.systems.batch import Batch, Column
from jobs.systems.drive.location import DriveError
from jobs.systems.drive.settings import SourceSettings
from jobs.systems.drive.xmlrows import xml_rows

CSV_BLOCK_BYTES = 1 << 20


class DriveFileError(DriveError):
    """A file that cannot be read as its format says; the message names file, line, column."""


# -- arrow ↔ logical types -----------------------------------------------------------------------
def logical_column(field: pa.Field) -> Column:
    kind = field.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind):
        return Column(field.name, "integer")
    if pa.types.is_floating(kind):
        return Column(field.name, "float")
    if pa.types.is_decimal(kind):
        return Column(field.name, "decimal", precision=kind.precision, scale=kind.scale)
    if pa.types.is_boolean(kind):
        return Column(field.name, "boolean")
    if pa.types.is_date(kind):
        return Column(field.name, "date")
    if pa.types.is_time(kind):
        return Column(field.name, "time")
    if pa.types.is_timestamp(kind):
        return Column(field.name, "datetimetz" if kind.tz else "datetime")
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return Column(field.name, "binary")
    if pa.types.is_nested(kind):
        return Column(field.name, "json")
    return Column(field.name, "string")


def arrow_type(column: Column) -> pa.DataType:
    return {
        "integer": pa.int64(),
        "float": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "time": pa.time64("us"),
        "datetime": pa.timestamp("us"),
        "datetimetz": pa.timestamp("us", tz="UTC"),
        "binary": pa.binary(),
    }.get(column.type) or (
        pa.decimal128(column.precision, column.scale or 0)
        if column.type == "decimal" and column.precision and column.precision <= 38
        else pa.string()
    )


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1)
_MICROSECONDS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _dates(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    # pyarrow builds each date object at about 6 µs; dates repeat, so build each one once.
    known: dict[int, dt.date] = {}
    out: list[Any] = []
    append = out.append
    for days in array.cast(pa.int32()).to_pylist():
        if days is None:
            append(None)
            continue
        value = known.get(days)
        if value is None:
            value = known[days] = dt.date.fromordinal(_EPOCH_ORDINAL + days)
        append(value)
    return out


def _timestamps(array: pa.Array | pa.ChunkedArray, tz: dt.tzinfo | None) -> list[Any]:
    # Same reason as _dates; nanoseconds keep pyarrow's own (exact) path.
    scale = _MICROSECONDS[array.type.unit]
    epoch = _EPOCH.replace(tzinfo=tz)
    delta = dt.timedelta
    return [
        None if v is None else epoch + delta(microseconds=v * scale)
        for v in pc.cast(array, pa.int64()).to_pylist()
    ]


def _values(array: pa.Array | pa.ChunkedArray, column: Column) -> list[Any]:
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = pc.cast(array, kind.value_type)
        kind = array.type
    if pa.types.is_date32(kind):
        return _dates(array)
    if pa.types.is_timestamp(kind) and kind.unit != "ns":
        return _timestamps(array, dt.UTC if kind.tz else None)
    if column.type == "datetimetz":
        # The engine carries aware values in UTC with a fixed offset (see jobs.sync.changelog).
        array = pc.cast(array, pa.timestamp(array.type.unit, tz="UTC"))
        return [None if v is None else v.replace(tzinfo=dt.UTC) for v in array.to_pylist()]
    if column.type == "json":
        return [None if v is None else json.dumps(v, default=str) for v in array.to_pylist()]
    if pa.types.is_null(array.type):
        return [None] * len(array)
    return array.to_pylist()  # type: ignore[no-any-return]


def arrow_batch(record_batch: pa.RecordBatch | pa.Table) -> Batch:
    columns = [logical_column(field) for field in record_batch.schema]
    values = [_values(record_batch.column(i), c) for i, c in enumerate(columns)]
    return Batch(columns, list(zip(*values, strict=True)) if values else [])


def _release() -> None:
    """Give Arrow's freed buffers back to the system: its allocator keeps them otherwise, and a
    1,000,000-row Parquet read peaked 50 MB higher for it."""
    pa.default_memory_pool().release_unused()


# -- CSV -----------------------------------------------------------------------------------------
def read_csv(
    handle: IO[bytes],
    name: str,
    settings: SourceSettings,
    schema: list[Column] | None,
    reopen: Callable[[], IO[bytes]],
) -> Iterator[Batch]:
    names = [c.name for c in schema] if schema and not settings.header else None
    read_options = pacsv.ReadOptions(
        block_size=CSV_BLOCK_BYTES,
        encoding=settings.encoding,
        column_names=names,
        autogenerate_column_names=not settings.header and names is None,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=settings.delimiter, quote_char=settings.quote or False
    )
    convert_options = pacsv.ConvertOptions(
        column_types={c.name: arrow_type(c) for c in schema} if schema else None,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        reader = pacsv.open_csv(
            handle,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
        for record_batch in reader:
            batch = arrow_batch(record_batch)
            del record_batch
            _release()
            if not settings.header and names is None:
                batch.columns = [
                    Column(f"Column{i + 1}", c.type) for i, c in enumerate(batch.columns)
                ]
            yield batch
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        raise DriveFileError(f"{name}: {_locate_csv_error(reopen, settings, str(exc))}") from None


_CONVERSION = re.compile(
    r"In CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'"
)
_COLUMNS = re.compile(r"Expected (\d+) columns, got (\d+)")


def _locate_csv_error(
    reopen: Callable[[], IO[bytes]], settings: SourceSettings, message: str
) -> str:
    """pyarrow does not say which line failed: find it with the csv module, on failure only."""
    message = message.strip().splitlines()[0]
    conversion = _CONVERSION.search(message)
    counts = _COLUMNS.search(message)
    if not conversion and not counts:
        return message
    with reopen() as raw:
        text = io.TextIOWrapper(raw, encoding=settings.encoding, errors="replace", newline="")
        rows = csv.reader(text, delimiter=settings.delimiter, quotechar=settings.quote or '"')
        header: list[str] = []
        for row in rows:
            if settings.header and not header:
                header = row
                continue
            if conversion:
                position, value = int(conversion.group(1)), conversion.group(3)
                if position < len(row) and row[position] == value:
                    column = header[position] if position < len(header) else f"#{position + 1}"
                    return (
                        f"line {rows.line_num}, column {position + 1} ({column}): "
                        f"'{value}' is not a valid {conversion.group(2)}."
                    )
            elif counts and len(row) == int(counts.group(2)):
                return (
                    f"line {rows.line_num}, column {min(map(int, counts.groups())) + 1}: expected "
                    f"{counts.group(1)} columns, got {counts.group(2)}."
                )
    return message


# -- Parquet -------------------------------------------------------------------------------------
def read_parquet(
    handle: IO[bytes], name: str, settings: SourceSettings, batch_size: int
) -> Iterator[Batch]:
    try:
        # No pre-buffering of whole row groups: it costs memory (about 25 MB a 100,000-row
        # group) and gains nothing on a local or sequentially read file.
        parquet = pq.ParquetFile(handle, pre_buffer=False)
        wanted = None
        if settings.selected:
            by_lower = {n.lower(): n for n in parquet.schema_arrow.names}
            wanted = [by_lower[c.lower()] for c in settings.selected if c.lower() in by_lower]
        produced = False
        for record_batch in parquet.iter_batches(batch_size=batch_size, columns=wanted):
            produced = True
            batch = arrow_batch(record_batch)
            del record_batch
            _release()
            yield batch
        if not produced:
            yield arrow_batch(parquet.schema_arrow.empty_table())
    except (pa.ArrowInvalid, OSError) as exc:
        raise DriveFileError(f"{name}: not a readable Parquet file ({exc}).") from None


# -- JSON ----------------------------------------------------------------------------------------
def _infer(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, dict | list):
        return "json"
    if isinstance(value, dt.datetime):  # Excel cells; JSON has no dates
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.time):
        return "time"
    return "string"


_INTEGER = re.compile(r"[+-]?\d{1,18}")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _infer_text(values: Iterator[Any]) -> str:
    present = [v for v in values if v not in (None, "")]
    if not present:
        return "string"
    if all(isinstance(v, str) and _INTEGER.fullmatch(v) for v in present):
        return "integer"
    if all(isinstance(v, str) and _NUMBER.fullmatch(v) for v in present):
        return "float"
    return "string"


def _records_batches(
    records: Iterator[tuple[int, dict[str, Any]]],
    name: str,
    schema: list[Column] | None,
    batch_size: int,
    *,
    infer_text: bool = False,
    unit: str = "line",
) -> Iterator[Batch]:
    """Objects (with their line) → batches; the columns are the first batch's keys.

    `infer_text`: values are all text (XML); a column whose values in the first batch are all
    whole numbers (or all numbers) is typed so, like a CSV reader would. `unit`: what the
    numbers that come with the objects count (`row` for a worksheet).
    """
    columns: list[Column] | None = list(schema) if schema else None
    pending: list[tuple[int, dict[str, Any]]] = []

    def flush() -> Batch:
        nonlocal columns
        if columns is None:
            names: dict[str, None] = {}
            for _, record in pending:
                names.update(dict.fromkeys(record))
            columns = []
            for key in names:
                if infer_text:
                    columns.append(Column(key, _infer_text(r.get(key) for _, r in pending)))
                    continue
                sample = next((r[key] for _, r in pending if r.get(key) is not None), None)
                columns.append(Column(key, _infer(sample) if sample is not None else "string"))
        known = {c.name for c in columns}
        convert = [_converter(c) for c in columns]
        rows = []
        for line, record in pending:
            extra = [key for key in record if key not in known]
            if extra and not schema:
                raise DriveFileError(
                    f"{name}: {unit} {line}: key '{extra[0]}' is not among the columns found "
                    "in the first records (list every column in a DriveSchemaFile)."
                )
            try:
                pairs = zip(convert, columns, strict=True)
                rows.append(tuple(fn(record.get(c.name)) for fn, c in pairs))
            except _BadValue as exc:
                raise DriveFileError(f"{name}: {unit} {line}: {exc}") from None
        pending.clear()
        return Batch(list(columns), rows)

    for line, record in records:
        if not isinstance(record, dict):
            raise DriveFileError(f"{name}: line {line}: a record must be a JSON object.")
        pending.append((line, record))
        if len(pending) >= batch_size:
            yield flush()
    if pending:
        yield flush()
    elif columns is None:
        yield Batch([], [])  # an empty file: its columns are unknown


def read_json(
    handle: IO[bytes],
    name: str,
    settings: SourceSettings,
    schema: list[Column] | None,
    batch_size: int,
) -> Iterator[Batch]:
    encoding = (
        "utf-8-sig"
        if settings.encoding.lower().replace("_", "-") == "utf-8"
        else (settings.encoding)
    )
    text = codecs.getreader(encoding)(handle, "strict")
    first = _first_char(text)
    records = _array_records(text, name) if first == "[" else _line_records(text, name, first)
    try:
        yield from _records_batches(records, name, schema, batch_size)
    except UnicodeDecodeError as exc:
        raise DriveFileError(f"{name}: not {settings.encoding} text ({exc.reason}).") from None


def _first_char(text: Any) -> str:
    """The first character that is not white space ('' for an empty file)."""
    while True:
        char = str(text.read(1))
        if char == "" or not char.isspace():
            return char


def _line_records(text: Any, name: str, first: str) -> Iterator[tuple[int, Any]]:
    lines = _prefixed(text, first)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            raise DriveFileError(
                f"{name}: line {number}, column {exc.colno}: {_json_message(exc)}."
            ) from None


def _prefixed(text: Any, first: str) -> Iterator[str]:
    if first:
        yield first + str(text.readline())
    yield from text


def _json_message(exc: json.JSONDecodeError) -> str:
    # The decoder's messages end in "at" before the position it appends; the position is ours.
    return exc.msg[:-3] + " here" if exc.msg.endswith(" at") else exc.msg


MAX_RECORD_CHARS = 64 << 20  # one element of a JSON array; bounds the decoding buffer


def _array_records(text: Any, name: str) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array (its `[` already read), one at a time."""
    decoder = json.JSONDecoder()
    buffer = ""
    line, column = 1, 2  # where buffer[0] is in the file (after the opening bracket)
    at_eof = False
    expect_value = True

    def more() -> bool:
        nonlocal buffer, at_eof
        if at_eof:
            return False
        chunk = str(text.read(1 << 16))
        at_eof = not chunk
        buffer += chunk
        return bool(chunk)

    def where(position: int) -> tuple[int, int]:
        before = buffer[:position]
        lines = before.count("\n")
        if not lines:
            return line, column + position
        return line + lines, position - before.rfind("\n")

    def drop(count: int) -> None:
        nonlocal buffer, line, column
        line, column = where(count)
        buffer = buffer[count:]

    while True:
        position = len(buffer) - len(buffer.lstrip())
        drop(position)
        if not buffer:
            if not more():
                raise DriveFileError(f"{name}: line {line}: the JSON array is not closed.")
            continue
        if buffer[0] == "]":
            return
        if not expect_value:
            if buffer[0] != ",":
                raise DriveFileError(f"{name}: line {line}, column {column}: expected ',' or ']'.")
            drop(1)
            expect_value = True
            continue
        try:
            value, end = decoder.raw_decode(buffer)
        except json.JSONDecodeError as exc:
            if len(buffer) < MAX_RECORD_CHARS and more():
                continue  # the element goes on in the next chunk
            at_line, at_column = where(exc.pos)
            raise DriveFileError(
                f"{name}: line {at_line}, column {at_column}: {_json_message(exc)}."
            ) from None
        if end == len(buffer) and more():
            continue  # a number may go on in the next chunk
        yield line, value
        drop(end)
        expect_value = False


# -- XML -----------------------------------------------------------------------------------------
def read_xml(
    handle: IO[bytes],
    name: str,
    settings: SourceSettings,
    schema: list[Column] | None,
    batch_size: int,
) -> Iterator[Batch]:
    limit = int(getattr(django_settings, "GATEWAY_DRIVE_XML_MAX_BYTES", 256 << 20))
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise DriveFileError(
            f"{name}: XML files are parsed whole and this one is larger than "
            f"{limit} bytes (GATEWAY_DRIVE_XML_MAX_BYTES)."
        )
    try:
        yield from _records_batches(
            xml_rows(data, settings.root_path), name, schema, batch_size, infer_text=True
        )
    except DriveFileError:
        raise
    except ValueError as exc:
        raise DriveFileError(f"{name}: {exc}") from None


# -- Excel ---------------------------------------------------------------------------------------
def read_excel(
    handle: IO[bytes],
    name: str,
    settings: SourceSettings,
    schema: list[Column] | None,
    batch_size: int,
) -> Iterator[Batch]:
    """One worksheet (`DriveExcelSheet`, else the first) of an .xlsx/.xlsm workbook, streamed
    by openpyxl's read-only mode a row at a time; formulas give their last computed value."""
    try:
        workbook = load_workbook(handle, read_only=True, data_only=True, keep_links=False)
    except _EXCEL_ERRORS as exc:
        raise DriveFileError(f"{name}: not a readable Excel workbook (.xlsx) ({exc}).") from None
    try:
        if settings.sheet:
            if settings.sheet not in workbook.sheetnames:
                raise DriveFileError(
                    f"{name} has no worksheet '{settings.sheet}' "
                    f"(worksheets: {', '.join(workbook.sheetnames)})."
                )
            sheet = workbook[settings.sheet]
        else:
            sheet = workbook.worksheets[0]
        records = _sheet_records(sheet.iter_rows(values_only=True), settings, schema)
        yield from _records_batches(records, name, schema, batch_size, unit="row")
    except DriveFileError:
        raise
    except _EXCEL_ERRORS as exc:  # a worksheet's XML broken inside a sound archive
        raise DriveFileError(f"{name}: not a readable Excel workbook (.xlsx) ({exc}).") from None
    finally:
        workbook.close()


_EXCEL_ERRORS = (InvalidFileException, BadZipFile, ParseError, KeyError, OSError, ValueError)


def _sheet_records(
    rows: Iterator[tuple[Any, ...]], settings: SourceSettings, schema: list[Column] | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    names: list[str] | None = None
    if not settings.header and schema:
        names = [c.name for c in schema]
    for number, values in enumerate(rows, start=1):
        if names is None and settings.header:
            names = [
                str(v).strip() if v not in (None, "") else f"Column{i + 1}"
                for i, v in enumerate(values)
            ]
            continue
        if all(v is None for v in values):
            continue  # formatted but empty rows, common below a sheet's data
        if names is None or len(values) > len(names):
            known = names or []
            names = known + [f"Column{i + 1}" for i in range(len(known), len(values))]
        yield number, dict(zip(names, values, strict=False))


# -- schema conversion (JSON, XML and Excel values) ---------------------------------------------
class _BadValue(ValueError):
    pass


def _converter(column: Column) -> Callable[[Any], Any]:
    kind = column.type

    def convert(value: Any) -> Any:
        if value is None or (value == "" and kind not in ("string", "json")):
            return None
        try:
            if kind == "json":
                return value if isinstance(value, str) else json.dumps(value)
            if isinstance(value, dict | list):
                return json.dumps(value)
            if kind == "string":
                if isinstance(value, str):
                    return value
                if isinstance(value, dt.date | dt.time):
                    return value.isoformat()
                return json.dumps(value)
            if kind == "integer":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                return int(value)
            if kind == "float":
                return float(value)
            if kind == "decimal":
                return decimal.Decimal(str(value))
            if kind == "boolean":
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered in ("true", "1", "yes"):
                        return True
                    if lowered in ("false", "0", "no"):
                        return False
                    raise ValueError
                return bool(value)
            if kind == "date":
                if isinstance(value, dt.datetime):  # an Excel date is a datetime at midnight
                    return value.date()
                return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
            if kind == "time":
                return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))
            if kind in ("datetime", "datetimetz"):
                parsed = (
                    value
                    if isinstance(value, dt.datetime)
                    else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                )
                if kind == "datetimetz" and parsed.tzinfo is not None:
                    return parsed.astimezone(dt.UTC)
                return parsed
            if kind == "binary":
                return value.encode() if isinstance(value, str) else bytes(value)
        except (ValueError, TypeError, ArithmeticError):
            raise _BadValue(f"column '{column.name}': {value!r} is not a valid {kind}.") from None
        return value

    return convert

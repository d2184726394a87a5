"""Rows kept as PostgreSQL text `COPY` lines, decoded into tuples only where a consumer needs them.

A PostgreSQL source's first load reads `COPY (…) TO STDOUT` (jobs.systems.db.reader
`read_copy_batches`); the lines go into the change log as they came (a `P` frame,
jobs.sync.changelog) and into a PostgreSQL target's `COPY … FROM STDIN` as they are
(jobs.systems.db.writer): no Python object per value on that path. Everything else — another
dialect's writer, a writer pipeline, an upsert that must deduplicate keys — iterates the rows
and gets exactly the tuples the cursor reader would have given (`decode`).

The lines are in the server's text output under the session settings the reader checked
(jobs.systems.db.reader `copy_columns`): ISO dates, hex bytea, UTC, UTF-8. `COPY TO` escapes
only backslash and the control characters `\\b \\f \\n \\r \\t \\v`, never octal or hex
sequences (PostgreSQL's COPY documentation), and writes NULL as `\\N`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import pyarrow as pa
import pyarrow.compute as pc

from jobs.systems.batch import Column

NULL = "\\N"
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m[1], m[1]), value)


def _bytea(value: str) -> bytes:
    # Hex output (`\x0a0b`), its backslash escaped once more by COPY.
    return bytes.fromhex(_unescape(value)[2:])


def _utc(value: str) -> dt.datetime:
    # The session is in UTC, so the offset is +00 and fromisoformat gives timezone.utc, as
    # the cursor reader's values carry.
    return dt.datetime.fromisoformat(value)


# The logical types whose text output this module turns into the values psycopg's text
# loaders give (jobs.systems.db.reader types columns from the same OIDs).
_DECODERS: dict[str, Callable[[str], Any]] = {
    "integer": int,
    "float": float,  # 'NaN', 'Infinity' and '-Infinity' included
    "decimal": decimal.Decimal,
    "string": _unescape,
    "boolean": "t".__eq__,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "datetime": dt.datetime.fromisoformat,
    "datetimetz": _utc,
    "binary": _bytea,
}
DECODABLE = frozenset(_DECODERS)


def _decode_column(values: tuple[str, ...], kind: str) -> list[Any]:
    fn = _DECODERS[kind]
    if kind == "string":
        # Most text holds no backslash at all: one scan of the column spares a call per value.
        if "\\" not in "".join(values):
            return list(values)
        return [None if v == NULL else _unescape(v) if "\\" in v else v for v in values]
    if NULL in values:
        return [None if v == NULL else fn(v) for v in values]
    return list(map(fn, values))


def decode(data: bytes | memoryview | pa.Buffer, types: Sequence[str]) -> list[tuple]:
    """The rows of `data` (text COPY lines, each ending in a newline) as tuples."""
    text = bytes(data).decode("utf-8")
    if not text:
        return []
    lines = text[:-1].split("\n")
    columns = list(zip(*[line.split("\t") for line in lines], strict=True))
    if len(columns) != len(types):
        raise ValueError(f"COPY rows have {len(columns)} fields, the header {len(types)}.")
    decoded = [_decode_column(column, kind) for column, kind in zip(columns, types, strict=True)]
    return list(zip(*decoded, strict=True))


def lines_of(data: bytes | pa.Buffer) -> pa.Array:
    """Text COPY data (complete lines) as one binary value per line, split in C."""
    if not len(data):
        return pa.array([], pa.binary())
    # One large_binary value over the data's own buffer, without a copy (pa.array over a
    # memoryview kept each batch's bytes alive: 150 MB more resident per million rows).
    ends = pa.py_buffer(struct.pack("<qq", 0, len(data) - 1))
    whole = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, ends, pa.py_buffer(data)])
    return pc.list_flatten(pc.split_pattern(whole, b"\n")).cast(pa.binary())


def joined(lines: pa.Array) -> pa.Buffer:
    """Lines (binary values) back into one buffer of newline-terminated COPY data."""
    if not len(lines):
        return pa.py_buffer(b"")
    out = pc.binary_join_element_wise(lines, pa.scalar(b"", pa.binary()), b"\n")
    _, offsets, values = out.buffers()
    assert offsets is not None and values is not None
    bounds = memoryview(offsets).cast("i")  # int32 offsets of a binary array
    start, end = bounds[out.offset], bounds[out.offset + len(out)]
    return values.slice(start, end - start)


def field(lines: pa.Array, position: int) -> pa.Array:
    """Field `position` (0-based, still escaped) of every line."""
    return pc.list_element(pc.split_pattern(lines, b"\t", max_splits=position + 1), position)


def int_field(lines: pa.Array, position: int) -> list[int] | None:
    """Field `position` as ints, parsed in C; None when one is not an int (NULL, overflow)."""
    try:
        return pc.cast(field(lines, position).cast(pa.string()), pa.int64()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


class CopyRows(Sequence[tuple]):
    """A batch's rows as text COPY data; iterating or indexing decodes them (once)."""

    def __init__(
        self, data: bytes | pa.Buffer, count: int, columns: Sequence[Column], lines: Any = None
    ) -> None:
        self.data = data
        self.length = count
        self.types = [column.type for column in columns]
        self._lines = lines
        self._rows: list[tuple] | None = None

    @property
    def rows(self) -> list[tuple]:
        if self._rows is None:
            self._rows = decode(self.data, self.types)
            if len(self._rows) != self.length:
                raise ValueError(f"COPY data holds {len(self._rows)} rows, not {self.length}.")
        return self._rows

    def ints(self, position: int) -> list[int] | None:
        """An integer column's values without decoding the rows (None: decode them)."""
        if self.types[position] != "integer":
            return None
        if self._lines is None:
            self._lines = lines_of(self.data)
        return int_field(self._lines, position)

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> tuple: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self.rows[index]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.rows)

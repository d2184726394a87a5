"""The change-log file format (`{JobKey}_{ExecutionId}.eds`): write, read and stream it.

See docs/changelog.md. A JSON header describes the columns, types and keys; frames of upserts
or deletes follow, each a Zstandard-compressed restricted pickle of row tuples; a trailer
closes it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import os
import pickle
import queue
import re
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from operator import itemgetter
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

import zstandard

from jobs.systems.batch import Column
from jobs.systems.pgcopy import CopyRows

MAGIC = b"DZEDS\x01\n"
FORMAT_VERSION = 3
# Format 1 (zlib frames) and 2 (no COPY frames) are still read: logs written before an upgrade
# stay applicable. A format-2 reader refuses a format-3 file rather than misread its frames.
_READABLE = {1: "zlib", 2: "zstd", 3: "zstd"}
UPSERT = b"U"
DELETE = b"D"
# Upserts as PostgreSQL text COPY lines (jobs.systems.pgcopy), kept as a PostgreSQL source gave
# them: a PostgreSQL target COPYs them as they are, other targets get them decoded.
COPY_TEXT = b"P"
END = b"E"
_FRAME = struct.Struct(">cII")  # op, row count, payload length
_TRAILER = struct.Struct(">QQ")  # total upserts, total deletes
_LENGTH = struct.Struct(">I")
# The log is written once and read once: speed over size. Zstandard level 1 compresses as
# well as zlib level 1 here at about three times the speed, and decompresses twice as fast.
COMPRESSION_LEVEL = 1

_NAME = re.compile(r"^(?P<key>.+)_(?P<id>\d+)\.eds$")


class ChangeLogError(ValueError):
    """The file is not a complete change log of this format."""


class PathOutsideDataDir(ValueError):
    """A job's Path would lead outside the gateway's data directory."""


@dataclass(frozen=True)
class Header:
    job_key: str
    execution_id: str
    columns: list[Column]
    keys: list[str]
    created: str = ""
    compression: str = "zstd"

    def to_json(self) -> bytes:
        body = {
            "format": 1 if self.compression == "zlib" else FORMAT_VERSION,
            "job_key": self.job_key,
            "execution_id": self.execution_id,
            "created": self.created,
            # `markup` only where set: other readers of the format need not know it.
            "columns": [
                {k: v for k, v in asdict(column).items() if k != "markup" or v}
                for column in self.columns
            ],
            "keys": self.keys,
            "compression": self.compression,
            "encoding": "pickle5-restricted",
        }
        return json.dumps(body).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Header:
        body = json.loads(raw)
        compression = _READABLE.get(body.get("format"))  # type: ignore[arg-type]
        if compression is None:
            raise ChangeLogError(f"Unsupported change log format {body.get('format')!r}.")
        return cls(
            job_key=body["job_key"],
            execution_id=body["execution_id"],
            columns=[Column(**column) for column in body["columns"]],
            keys=list(body["keys"]),
            created=body.get("created", ""),
            compression=compression,
        )


# Only these classes may be rebuilt from a frame: the value types the engine moves. Anything
# else in a file (a crafted `os.system` reference) is refused before it is called.
_ALLOWED = {
    ("decimal", "Decimal"): decimal.Decimal,
    ("datetime", "date"): dt.date,
    ("datetime", "datetime"): dt.datetime,
    ("datetime", "time"): dt.time,
    ("datetime", "timedelta"): dt.timedelta,
    ("datetime", "timezone"): dt.timezone,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise ChangeLogError(
                f"Change log refers to {module}.{name}, which is not a value type."
            )
        return allowed


def pickle_rows(rows: list[tuple]) -> tuple[bytes, list[int]]:
    """Each row as its own pickle, back to back: the bytes and where each row ends.

    The memo is off, so a row's bytes depend only on its values (the row hash is computed
    from them) and each row reads back on its own; one Pickler serves the whole batch.
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True  # no memo: rows hold scalars only, nothing refers back
    dump, tell = pickler.dump, buffer.tell
    ends = []
    for row in rows:
        dump(row)
        ends.append(tell())
    return buffer.getvalue(), ends


def loads(payload: bytes) -> Any:
    """Unpickle values written by this module, refusing anything but plain value types."""
    return _RestrictedUnpickler(io.BytesIO(payload)).load()


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


# Values of these logical types travel as text (ISO 8601, decimal strings): pickling them
# goes through __reduce__ and costs several times more, on both ends. A column is encoded
# in a frame only when every value in it has exactly the expected class, so decoding is exact.
def _aware_utc(value: dt.datetime) -> bool:
    return type(value.tzinfo) is dt.timezone


_TEXT_CODECS: dict[str, tuple[type, Any, Any]] = {
    "decimal": (decimal.Decimal, str, decimal.Decimal),
    "date": (dt.date, dt.date.isoformat, dt.date.fromisoformat),
    "time": (dt.time, dt.time.isoformat, dt.time.fromisoformat),
    "datetime": (dt.datetime, dt.datetime.isoformat, dt.datetime.fromisoformat),
    "datetimetz": (dt.datetime, dt.datetime.isoformat, dt.datetime.fromisoformat),
}


def encode_frame(rows: list[tuple], types: list[str]) -> tuple[tuple[int, ...], list[tuple]]:
    """(positions written as text, rows) for a frame; see _TEXT_CODECS."""
    wanted = [(p, _TEXT_CODECS[t]) for p, t in enumerate(types) if t in _TEXT_CODECS]
    if not rows or not wanted:
        return (), rows
    # Columns are taken out one at a time (`itemgetter` maps run in C) and the rows rebuilt
    # once: `zip(*rows)` over 10,000 rows cost three times as much (bench/drive.py, a date
    # column read from CSV: 22 ms a batch before, 10 after).
    columns: list[list[Any]] | None = None
    encoded = []
    for position, (cls, to_text, _) in wanted:
        column = list(map(itemgetter(position), rows))
        if not set(map(type, column)) <= {cls, type(None)}:
            continue
        if types[position] in ("datetime", "datetimetz") and not all(
            v is None or v.tzinfo is None or _aware_utc(v) for v in column
        ):
            continue  # a named zone would lose its name as text: leave it to pickle
        if columns is None:
            columns = [list(map(itemgetter(i), rows)) for i in range(len(types))]
        if types[position] == "date":
            columns[position] = _shared_texts(column, to_text)
        elif None in column:
            columns[position] = [None if v is None else to_text(v) for v in column]
        else:
            columns[position] = list(map(to_text, column))
        encoded.append(position)
    if columns is None:
        return (), rows
    return tuple(encoded), list(zip(*columns, strict=True))


def _shared_texts(column: list[Any], to_text: Callable[[Any], str]) -> list[Any]:
    """The column's values as text (None stays None), each distinct value converted once:
    dates repeat (a file's rows span a few hundred days), and building the texts is most of
    the encoding's cost. Dates only: equal decimals (1.0, 1.00) and equal aware timestamps
    (in two offsets) have different texts."""
    distinct = set(column)
    if len(distinct) > len(column) // 2:  # mostly unique: the lookup is no gain
        return [None if v is None else to_text(v) for v in column]
    text = {v: None if v is None else to_text(v) for v in distinct}
    return list(map(text.__getitem__, column))


def decode_frame(payload: Any, types: list[str]) -> list[tuple]:
    encoded, rows = payload
    if not encoded:
        return rows
    columns = list(zip(*rows, strict=True))
    for position in encoded:
        from_text = _TEXT_CODECS[types[position]][2]
        columns[position] = tuple([None if v is None else from_text(v) for v in columns[position]])
    return list(zip(*columns, strict=True))


class ChangeLogWriter:
    """Streams frames to `<final>.part`; `commit()` makes the file durable and gives it its name."""

    def __init__(
        self,
        path: Path,
        header: Header,
        on_frame: Callable[[bytes, list[tuple]], None] | None = None,
    ) -> None:
        self.path = path
        self._on_frame = on_frame  # a direct job's writer applying the frames as they come
        self.partial = path.with_name(path.name + ".part")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self.partial, "wb")  # noqa: SIM115 - closed in commit/abort
        self.upserts = 0
        self.deletes = 0
        raw = header.to_json()
        self._file.write(MAGIC + _LENGTH.pack(len(raw)) + raw)
        self._compression = header.compression
        self._row_types = [column.type for column in header.columns]
        by_name = {column.name.lower(): column.type for column in header.columns}
        self._key_types = [by_name.get(key.lower(), "") for key in header.keys]
        # Zstandard releases the GIL: compressing and writing on a thread overlaps with reading the
        # next batch. The queue is short, so at most a few frames wait in memory.
        self._queue: queue.Queue[tuple[bytes, int, Any] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="changelog-writer", daemon=True)
        self._thread.start()

    def write_upserts(
        self,
        rows: list[tuple],
        encoded: tuple[tuple[int, ...], list[tuple]] | None = None,
        pickled: bytes | None = None,
    ) -> None:
        """Append upserts; `encoded` (`encode_frame(rows)`) and `pickled` (the encoded rows
        through `pickle_rows`) are passed when the caller has them already."""
        if rows:
            self._frame(UPSERT, rows, self._row_types, encoded, pickled)
            self.upserts += len(rows)

    def write_deletes(self, keys: list[tuple]) -> None:
        if keys:
            self._frame(DELETE, keys, self._key_types)
            self.deletes += len(keys)

    def _frame(
        self,
        op: bytes,
        rows: list[tuple],
        types: list[str],
        encoded: tuple[tuple[int, ...], list[tuple]] | None = None,
        pickled: bytes | None = None,
    ) -> None:
        if self._error is not None:
            raise self._error
        if isinstance(rows, CopyRows) and op == UPSERT:
            self._queue.put((COPY_TEXT, len(rows), rows.data))
            if self._on_frame is not None:
                self._on_frame(op, rows)
            return
        text_columns, encoded_rows = encoded or encode_frame(rows, types)
        if pickled is None:
            pickled = pickle_rows(encoded_rows)[0]
        self._queue.put((op, len(rows), dumps((text_columns,)) + pickled))
        if self._on_frame is not None:
            self._on_frame(op, rows)

    def _drain(self) -> None:
        compress = (
            zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compress
            if self._compression == "zstd"
            else partial(zlib.compress, level=COMPRESSION_LEVEL)
        )
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue
            op, count, raw = item
            try:
                payload = compress(raw)
                self._file.write(_FRAME.pack(op, count, len(payload)))
                self._file.write(payload)
            except BaseException as exc:  # handed to the reader's thread at the next call
                self._error = exc

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    @property
    def changes(self) -> int:
        return self.upserts + self.deletes

    def commit(self) -> None:
        """Close with the trailer, fsync, rename into place and fsync the folder."""
        self.seal()
        self.publish()

    def seal(self) -> None:
        """Close with the trailer and fsync, still under its `.part` name: complete and durable,
        but no writer sees it until `publish()`."""
        self._stop()
        if self._error is not None:
            raise self._error
        self._file.write(_FRAME.pack(END, 0, _TRAILER.size))
        self._file.write(_TRAILER.pack(self.upserts, self.deletes))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def publish(self) -> None:
        """Give the sealed log its name, the one writers look for (see `publish_sealed`)."""
        publish_sealed(self.path)

    def abort(self) -> None:
        self._stop()
        if not self._file.closed:
            self._file.close()
        self.partial.unlink(missing_ok=True)


def publish_sealed(path: Path) -> bool:
    """Rename `<path>.part` to `path` and fsync the folder; False when there was no `.part`
    (published already: a reader's run taken over after its publication record was written
    is rolled forward by the next owner, and the resumed worker's own rename then finds
    nothing to do)."""
    try:
        os.replace(path.with_name(path.name + ".part"), path)
    except FileNotFoundError:
        return False
    _fsync_dir(path.parent)
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Frame:
    op: bytes
    rows: list[tuple]

    @property
    def is_delete(self) -> bool:
        return self.op == DELETE


class ChangeLogReader:
    """Reads a change log frame by frame; only one frame is in memory at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()/context
        if self._file.read(len(MAGIC)) != MAGIC:
            self._file.close()
            raise ChangeLogError(f"{path.name} is not a change log.")
        (length,) = _LENGTH.unpack(self._read(_LENGTH.size))
        self.header = Header.from_json(self._read(length))
        self.upserts = 0
        self.deletes = 0

    def _read(self, size: int) -> bytes:
        data = self._file.read(size)
        if len(data) != size:
            raise ChangeLogError(f"{self.path.name} is truncated.")
        return data

    def frames(self) -> Iterator[Frame]:
        decompress = (
            zstandard.ZstdDecompressor().decompress
            if self.header.compression == "zstd"
            else zlib.decompress
        )
        while True:
            op, count, length = _FRAME.unpack(self._read(_FRAME.size))
            payload = self._read(length)
            if op == END:
                self.upserts, self.deletes = _TRAILER.unpack(payload)
                return
            if op not in (UPSERT, DELETE, COPY_TEXT):
                raise ChangeLogError(f"{self.path.name}: unknown frame {op!r}.")
            try:
                raw = decompress(payload)
            except (zlib.error, zstandard.ZstdError) as exc:
                raise ChangeLogError(f"{self.path.name}: damaged frame ({exc}).") from None
            if op == COPY_TEXT:
                if raw.count(b"\n") != count:
                    raise ChangeLogError(f"{self.path.name}: damaged frame (row count).")
                yield Frame(UPSERT, CopyRows(raw, count, self.header.columns))  # type: ignore[arg-type]
                continue
            unpickler = _RestrictedUnpickler(io.BytesIO(raw))
            try:
                (text_columns,) = unpickler.load()
                rows = [unpickler.load() for _ in range(count)]
            except ChangeLogError:
                raise
            except (EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
                raise ChangeLogError(f"{self.path.name}: damaged frame ({exc}).") from None
            yield Frame(op, decode_frame((text_columns, rows), self._types(op)))

    def _types(self, op: bytes) -> list[str]:
        if op == DELETE:
            by_name = {c.name.lower(): c.type for c in self.header.columns}
            return [by_name.get(key.lower(), "") for key in self.header.keys]
        return [column.type for column in self.header.columns]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ChangeLogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_file_name(job_key: str, execution_id: str) -> str:
    return f"{safe_file_part(job_key)}_{execution_id}.eds"


def safe_file_part(job_key: str) -> str:
    # Job keys are free text; keep them readable but never a path of their own.
    return re.sub(r"[\\/:*?\"<>|\x00-\x1f]", "_", job_key).strip(". ") or "job"


def pending_logs(folder: Path, job_key: str, after: str) -> list[tuple[str, Path]]:
    """Complete change logs of `job_key` in `folder` with an ExecutionId above `after`, in order."""
    if not folder.is_dir():
        return []
    prefix = safe_file_part(job_key)
    floor = int(after) if after and after.isdigit() else 0
    found: list[tuple[int, Path]] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match and match.group("key") == prefix and int(match.group("id")) > floor:
            found.append((int(match.group("id")), entry))
    return [(str(execution_id), path) for execution_id, path in sorted(found)]


def job_folder(data_dir: Path, job_path: str | None) -> Path:
    """Where a job's change logs live: its `Path`, mapped under the data directory.

    `C:\\tmp\\datasync_reader` → `<data>/drive_c/tmp/datasync_reader`; `/srv/x` → `<data>/srv/x`;
    a relative path is relative to the data directory; `..` is refused.
    """
    raw = (job_path or "").strip()
    if not raw:
        return data_dir / "changelogs"
    parts: list[str]
    if re.match(r"^[A-Za-z]:", raw) or "\\" in raw:
        windows = PureWindowsPath(raw)
        drive = windows.drive.rstrip(":").lower()
        parts = ([f"drive_{drive}"] if drive and len(drive) == 1 else []) + [
            part for part in windows.parts if part not in (windows.anchor, "\\", "/")
        ]
        if windows.drive and len(drive) != 1:  # UNC \\server\share
            parts = ["unc", *[p for p in re.split(r"[\\/]+", windows.drive) if p], *parts[0:]]
    else:
        parts = [part for part in PurePosixPath(raw).parts if part != "/"]
    if any(part in ("..", ".") or ":" in part for part in parts):
        raise PathOutsideDataDir(f"Path '{raw}' escapes the data directory.")
    folder = data_dir.joinpath(*parts) if parts else data_dir / "changelogs"
    resolved = folder.resolve()
    if not resolved.is_relative_to(data_dir.resolve()):
        raise PathOutsideDataDir(f"Path '{raw}' escapes the data directory.")
    if resolved.is_relative_to(data_dir.resolve() / "drive"):
        # The default drive root (docs/drive.md): drive jobs read and write files there, and
        # must never reach a change log.
        raise PathOutsideDataDir(
            f"Path '{raw}' maps into <data dir>/drive, the drive jobs' folder; "
            "change logs are kept out of it."
        )
    return resolved

"""Apply change logs to a drive folder or bucket: files per change log, named by ExecutionId.

Upserts go to `<stem>_<ExecutionId>.<ext>`, deletes (with `PropagateDelete`) to
`<stem>_<ExecutionId>.deletes.<ext>`, each written under a hidden name and renamed (or its
upload completed) once whole. Files have no transactions: the writer's position is a small
file `.datazen/<writer guid>.<claim's fence token>.json` beside them (jobs/systems/positions.py),
written after the data files, and a change log applied again (a crash between the two) writes
the same names again: nothing is doubled.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import posixpath
from collections.abc import Callable, Iterable
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jobs.sync.changelog import Frame, Header
from jobs.systems.base import ApplyHooks, ApplyResult, LeaseLost
from jobs.systems.batch import Batch, Column
from jobs.systems.drive import compression
from jobs.systems.drive.formats import arrow_type
from jobs.systems.drive.location import AtomicFile, DriveError, Location
from jobs.systems.drive.settings import TargetFiles
from jobs.systems.positions import Positions

STATE_FOLDER = ".datazen"
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


def _arrow_table(batch: Batch, schema: pa.Schema) -> pa.Table:
    columns = list(zip(*batch.rows, strict=True)) if batch.rows else [()] * len(batch.columns)
    arrays = []
    for values, field in zip(columns, schema, strict=True):
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise DriveError(
                f"Column '{field.name}' holds a value that is not {field.type} ({exc})."
            ) from None
    return pa.Table.from_arrays(arrays, schema=schema)


def arrow_schema(columns: list[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c)) for c in columns])


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def _write(handle: IO[bytes], data: bytes) -> None:
    handle.write(data)


class _FileOut:
    """One output file in one format, opened at its first rows."""

    def __init__(self, location: Location, name: str, fmt: str, columns: list[Column]) -> None:
        self.location, self.name, self.fmt = location, name, fmt
        self.columns = columns
        self.schema = arrow_schema(columns)
        self.target: AtomicFile | None = None
        self._out: IO[bytes] | None = None  # the target's handle, or a compressor over it
        self._writer: Any = None
        self.rows = 0
        self.committed = False

    def _open(self) -> IO[bytes]:
        if self._out is None:
            self.target = self.location.open_atomic(self.name)
            self._out = compression.writing(self.target.handle, compression.codec_of(self.name))
            if self.fmt == "csv":
                self._writer = pacsv.CSVWriter(self._out, self.schema)
            elif self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self._out, self.schema)
        return self._out

    def write(self, batch: Batch) -> None:
        if not batch.rows:
            return
        handle = self._open()
        if self.fmt == "jsonl":
            names = [c.name for c in self.columns]
            lines = [
                json.dumps(dict(zip(names, row, strict=True)), default=_json_value)
                for row in batch.rows
            ]
            handle.write(("\n".join(lines) + "\n").encode())
        else:
            self._writer.write_table(_arrow_table(batch, self.schema))
        self.rows += len(batch.rows)

    def commit(self, superseded: Callable[[], bool]) -> None:
        if self.target is None or self.committed:
            return
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._out is not None and self._out is not self.target.handle:
            self._out.close()  # ends the compressed stream; the file itself stays open
        self.target.commit_unless(superseded)
        self.committed = True

    def abort(self) -> None:
        if self.target is not None and not self.committed:
            self.target.abort()


class _StateFolder:
    """The `.datazen` folder beside the files, holding the writer's position files
    (jobs/systems/positions.py)."""

    def __init__(self, location: Location) -> None:
        self.location = location

    def names(self) -> list[str]:
        try:
            # refresh: a bucket's listing is cached by its filesystem, and another worker may
            # have written a position since.
            found = self.location.fs.ls(
                self.location.full(STATE_FOLDER), detail=False, refresh=True
            )
        except FileNotFoundError:
            return []
        return [posixpath.basename(str(name).rstrip("/")) for name in found]

    def read(self, name: str) -> str | None:
        try:
            return self.location.read_text(f"{STATE_FOLDER}/{name}")
        except (FileNotFoundError, DriveError):
            return None

    def write(self, name: str, text: str) -> None:
        data = text.encode()
        self.location.write_atomic(f"{STATE_FOLDER}/{name}", lambda handle: _write(handle, data))

    def remove(self, name: str) -> None:
        self.location.remove(f"{STATE_FOLDER}/{name}")


class DriveWriter:
    """A folder (or bucket prefix) receiving one file per change log and operation."""

    def __init__(self, location: Location, target: TargetFiles, writer_guid: str) -> None:
        self.location = location.child(target.folder) if target.folder else location
        self.target = target
        self.writer_guid = writer_guid
        self.positions = Positions(_StateFolder(self.location), writer_guid)

    def applied_position(self) -> str:
        return str(self.positions.read().get("last_execution_id") or "")

    def file_names(self, execution_id: str) -> tuple[str, str]:
        extension = EXTENSIONS[self.target.file_format]
        if self.target.compression:
            extension += f".{self.target.compression}"
        base = f"{self.target.stem}_{execution_id}"
        return f"{base}.{extension}", f"{base}.deletes.{extension}"

    def apply(
        self,
        header: Header,
        frames: Iterable[Frame],
        execution_id: str,
        hooks: ApplyHooks,
        *,
        recreate: bool = False,
        propagate_delete: bool = False,
        keys: list[str] | None = None,
    ) -> ApplyResult:
        done = str(self.positions.claim(hooks.fence).get("last_execution_id") or "")
        if done.isdigit() and int(done) >= int(execution_id):
            return ApplyResult(applied=False)
        if recreate:
            hooks.log("recreate: a drive target has no table to rebuild; files are written anew.")
        columns = hooks.transform(Batch(header.columns, [])).columns
        by_name = {c.name.lower(): c for c in header.columns}
        key_columns = [by_name.get(k.lower(), Column(k)) for k in (keys or header.keys)]
        upsert_name, delete_name = self.file_names(execution_id)
        fmt = self.target.file_format
        upserts = _FileOut(self.location, upsert_name, fmt, columns)
        deletes = _FileOut(self.location, delete_name, fmt, key_columns)
        try:
            for frame in frames:
                hooks.check_cancel()
                if frame.is_delete:
                    if propagate_delete:
                        deletes.write(Batch(key_columns, frame.rows))
                else:
                    upserts.write(hooks.transform(Batch(header.columns, frame.rows)))
                hooks.progress(upserts.rows, deletes.rows)
                hooks.after_chunk(upserts.rows + deletes.rows)
        except BaseException:
            upserts.abort()
            deletes.abort()
            raise

        # A file is given its name only while no later claim has taken the writer over, and
        # never over a file a later claim wrote (`AtomicFile.commit_unless`).
        def superseded() -> bool:
            try:
                self.positions.check(hooks.fence)
            except LeaseLost:
                return True
            return False

        try:
            upserts.commit(superseded)
            deletes.commit(superseded)
        except BaseException:
            upserts.abort()
            deletes.abort()
            raise
        written = [f.name for f in (upserts, deletes) if f.rows]
        if written:
            hooks.log(f"Wrote {', '.join(written)} to {self.location.description}.")
        self.positions.save(
            hooks.fence,
            {
                "last_execution_id": execution_id,
                "files": written,
                "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            },
        )
        return ApplyResult(applied=True, upserts=upserts.rows, deletes=deletes.rows)

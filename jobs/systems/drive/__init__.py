"""Drive systems: files in local folders (confined under GATEWAY_DRIVE_ROOT) and S3-compatible
buckets, as sources (`DriveSourceSettings`) and targets (files per change log).

`location` opens the folder or bucket (fsspec), `formats` turns files into batches,
`memory` remembers files between runs (`DriveUpdatedFilesOnly`), `writer` writes change logs
as files. See docs/drive.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from django.conf import settings as django_settings

from jobs.sync.changelog import Frame, Header
from jobs.sync.spec import ReaderSpec, SpecError, WriterSpec
from jobs.systems.base import (
    ApplyHooks,
    ApplyResult,
    Connection,
    Pushdown,
    Reader,
    Since,
    UnsupportedSystem,
)
from jobs.systems.batch import Batch, Column
from jobs.systems.drive import compression, formats
from jobs.systems.drive.location import DriveError, FileEntry, Location, open_location
from jobs.systems.drive.memory import FileMemory
from jobs.systems.drive.settings import SourceSettings, TargetFiles, parse_schema
from jobs.systems.drive.writer import DriveWriter

FILE_LINES = 200  # files named one by one in a run's log; the summary line counts them all


class DriveReader:
    """The files of a folder or bucket matching the job's pattern, as one stream of rows."""

    # Files have no index to filter on: the timestamp strategy drops rows below the pointer.
    pushdown = Pushdown(since=False)

    def __init__(self, location: Location, spec: ReaderSpec) -> None:
        self.location = location
        self.spec = spec
        self.settings = SourceSettings.parse(spec.source_settings)
        self.schema: list[Column] | None = None
        if self.settings.schema_file:
            self.schema = parse_schema(
                self.location.read_text(self.settings.schema_file),
                f"DriveSchemaFile '{self.settings.schema_file}'",
            )
        self.memory: FileMemory | None = None
        self.files_read = 0
        self.files_skipped = 0
        self.bytes_read = 0
        self.bytes_skipped = 0
        self._log: Callable[[str], None] = lambda message: None

    def estimate_rows(self) -> int | None:
        return None  # rows are known only once a file is parsed

    # -- the Reader interface -------------------------------------------------------------------
    def batches(
        self, *, batch_size: int, limit: int | None = None, since: Since | None = None
    ) -> Iterator[Batch]:
        remaining = limit
        produced = False
        for batch in self._rows(batch_size):
            if remaining is not None:
                batch.rows = batch.rows[:remaining]
                remaining -= len(batch.rows)
            produced = True
            yield batch
            if remaining is not None and remaining <= 0:
                return
        if not produced:
            # No file (or only empty ones): the key columns let change detection find that
            # every row it remembers was deleted.
            yield Batch(self._columns or [Column(k) for k in self.spec.keys], [])

    def deleted_keys(self, *, batch_size: int, since: Since | None = None) -> Iterator[Batch]:
        raise UnsupportedSystem("A drive reader has no DeletedRecordsSQL.")

    def commit(self) -> None:
        if self.memory is not None:
            self.memory.commit()

    def report_to(self, log: Callable[[str], None]) -> None:
        self._log = log

    def _note(self, message: str) -> None:
        """A line per file, up to FILE_LINES of them: a folder of 100,000 small files should
        not add 100,000 lines to the run's log (the summary counts them all)."""
        if self.files_read + self.files_skipped <= FILE_LINES:
            self._log(message)

    # -- reading --------------------------------------------------------------------------------
    _columns: list[Column] | None = None

    def _rows(self, batch_size: int) -> Iterator[Batch]:
        settings = self.settings
        entries = self.location.list_files(
            subfolders=settings.subfolders, patterns=settings.patterns
        )
        if settings.schema_file:
            entries = [e for e in entries if e.path != settings.schema_file.strip("/")]
        if settings.updated_only:
            # With keys every row is compared with the last run's: unchanged files are
            # replayed from their snapshot rather than read from the source again.
            keyed = bool(self.spec.keys) and not self.spec.timestamp_col
            self.memory = FileMemory.for_job(
                Path(django_settings.DATA_DIR),
                self.spec.job_key,
                settings.fingerprint(),
                snapshots=keyed,
            )
        if not entries:
            self._log(
                f"No file in {self.location.description} matches "
                f"{'; '.join(settings.patterns)}"
                + (" (subfolders included)." if settings.subfolders else ".")
            )
        for entry in entries:
            memory = self.memory
            if memory is not None and memory.unchanged(entry):
                memory.keep(entry)
                self.files_skipped += 1
                self.bytes_skipped += entry.size
                self._note(
                    f"Skipped {entry.path} ({size_text(entry.size)}): unchanged since the last "
                    + ("run; its rows replayed from that read." if memory.snapshots else "run.")
                )
                if memory.snapshots:
                    for batch in memory.replay(entry):
                        yield self._align(batch, entry.path, folder=None)
                continue
            self.files_read += 1
            self.bytes_read += entry.size
            snapshot = None
            rows = 0
            try:
                for batch in self._read_file(entry, batch_size):
                    aligned = self._align(batch, entry.path, folder=entry.folder)
                    if memory is not None and snapshot is None:
                        snapshot = memory.snapshot(entry, aligned.columns)
                    if snapshot is not None:
                        snapshot.write_upserts(aligned.rows)
                    rows += len(aligned.rows)
                    yield aligned
                if memory is not None:
                    if snapshot is None and self._columns is not None:
                        snapshot = memory.snapshot(entry, self._columns)
                    memory.read(entry, snapshot)
            except BaseException:
                if snapshot is not None:
                    snapshot.abort()
                raise
            self._note(f"Read {entry.path} ({size_text(entry.size)}, {rows:,} rows).")
        self._log(
            f"Files in {self.location.description}: {self.files_read} read "
            f"({size_text(self.bytes_read)})"
            + (
                f", {self.files_skipped} skipped as unchanged ({size_text(self.bytes_skipped)})"
                if settings.updated_only
                else ""
            )
            + (
                f"; the first {FILE_LINES} are listed above."
                if self.files_read + self.files_skipped > FILE_LINES
                else "."
            )
        )

    def _read_file(self, entry: FileEntry, batch_size: int) -> Iterator[Batch]:
        settings = self.settings
        name = entry.path
        fmt = settings.file_format
        codec = compression.codec_of(name)
        if codec and fmt in ("parquet", "excel"):
            raise DriveError(
                f"{name}: {'Parquet files' if fmt == 'parquet' else 'Excel workbooks'} are "
                "compressed inside and read by seeking, so they are not read compressed "
                f"(.{compression.extension_of(name)}); store them as they are."
            )

        def reopen() -> IO[bytes]:
            return compression.reading(self.location.open(entry.path), codec)

        try:
            with reopen() as handle:
                if fmt == "csv":
                    schema = self.schema or self._file_columns()
                    yield from formats.read_csv(handle, name, settings, schema, reopen)
                elif fmt == "parquet":
                    yield from formats.read_parquet(handle, name, settings, batch_size)
                elif fmt == "xml":
                    yield from formats.read_xml(handle, name, settings, self.schema, batch_size)
                elif fmt == "excel":
                    yield from formats.read_excel(
                        handle, name, settings, self.schema or self._file_columns(), batch_size
                    )
                else:
                    yield from formats.read_json(
                        handle, name, settings, self.schema or self._file_columns(), batch_size
                    )
        except FileNotFoundError:
            raise DriveError(f"{name} disappeared while the run read the folder.") from None
        except compression.ERRORS as exc:
            if not codec:
                raise
            raise formats.DriveFileError(
                f"{name}: not a readable {codec} file ({exc or type(exc).__name__})."
            ) from None

    def _file_columns(self) -> list[Column] | None:
        """Columns the next file is read with: the ones the first file settled, if any."""
        if self._columns is None:
            return None
        folder = self.settings.folder_column.lower()
        return [c for c in self._columns if not folder or c.name.lower() != folder]

    def _align(self, batch: Batch, name: str, *, folder: str | None) -> Batch:
        """Every batch in the run's columns: selected ones, in order, plus the folder column."""
        settings = self.settings
        if self._columns is None:
            if self.schema is not None:
                base = list(self.schema)
            else:
                base = batch.columns
            if settings.selected:
                base = [_pick(base, wanted, name) for wanted in settings.selected]
            if settings.folder_column:
                base = [
                    *[c for c in base if c.name.lower() != settings.folder_column.lower()],
                    Column(settings.folder_column, "string"),
                ]
            self._columns = base
        columns = self._columns
        if folder is None and [c.name for c in batch.columns] == [c.name for c in columns]:
            return Batch(columns, batch.rows)  # a replayed snapshot is in the run's columns
        positions = {c.name.lower(): i for i, c in enumerate(batch.columns)}
        if not settings.selected and self.schema is None:
            wanted = {c.name.lower() for c in columns}
            extra = [c.name for c in batch.columns if c.name.lower() not in wanted]
            if extra:
                raise DriveError(
                    f"{name} has column '{extra[0]}', which the first file read did not have "
                    "(list the columns in DriveFileSelectedColumns or a DriveSchemaFile)."
                )
        folder_name = settings.folder_column.lower()
        picks: list[int | None] = []
        for column in columns:
            if folder_name and column.name.lower() == folder_name and folder is not None:
                picks.append(-1)
            else:
                picks.append(positions.get(column.name.lower()))
        if picks == list(range(len(batch.columns))):
            return Batch(columns, batch.rows)
        folder_value = folder if folder is not None else None
        rows = [
            tuple(folder_value if p == -1 else (row[p] if p is not None else None) for p in picks)
            for row in batch.rows
        ]
        return Batch(columns, rows)


def size_text(size: int) -> str:
    """812 bytes, 1.5 KB, 116.2 MB: sizes as the run's log shows them."""
    if size < 1024:
        return f"{size} byte{'' if size == 1 else 's'}"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


def _pick(columns: list[Column], wanted: str, name: str) -> Column:
    for column in columns:
        if column.name.lower() == wanted.lower():
            return column
    raise DriveError(
        f"DriveFileSelectedColumns names '{wanted}', which {name} does not have "
        f"(columns: {', '.join(c.name for c in columns)})."
    )


class DriveTarget:
    """The Writer interface over `DriveWriter`, with the job's delete settings."""

    def __init__(self, writer: DriveWriter, spec: WriterSpec) -> None:
        self.writer = writer
        self.spec = spec

    def applied_position(self) -> str:
        return self.writer.applied_position()

    def apply(
        self,
        header: Header,
        frames: Iterable[Frame],
        execution_id: str,
        hooks: ApplyHooks,
        *,
        recreate: bool = False,
    ) -> ApplyResult:
        return self.writer.apply(
            header,
            frames,
            execution_id,
            hooks,
            recreate=recreate,
            propagate_delete=self.spec.propagate_delete,
            keys=self.spec.keys,
        )

    def run_script(self, script: str) -> None:
        raise UnsupportedSystem("A drive target has no InitScript or FinalScript.")

    def streams_beside(self, reader: Reader) -> bool:
        return True  # files are written on their own thread while the reader reads


class DriveSystem:
    def reader(self, connection: Connection, spec: ReaderSpec) -> DriveReader:
        return DriveReader(_location(connection), spec)

    def writer(self, connection: Connection, spec: WriterSpec, writer_guid: str) -> DriveTarget:
        try:
            target = TargetFiles.parse(spec.target_object, spec.job_key)
        except SpecError as exc:
            raise DriveError(str(exc)) from None
        return DriveTarget(DriveWriter(_location(connection), target, writer_guid), spec)

    def check(self, connection: Connection) -> str:
        return check_value(connection.value)


def check_value(value: str) -> str:
    """Open a drive connection string as a job would (confinement included) and list it."""
    location = open_location(value)
    files = location.list_files(subfolders=False, patterns=["*"])
    return f"{location.description}: {len(files)} file(s)"


def _location(connection: Connection) -> Location:
    if connection.key is None:
        raise UnsupportedSystem("Drive jobs name a stored connection string, not an inline one.")
    try:
        return open_location(connection.value)
    except DriveError as exc:
        raise DriveError(f"{connection.describe()}: {exc}") from None


__all__ = ["DriveReader", "DriveSystem", "DriveTarget", "check_value"]

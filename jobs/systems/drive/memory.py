"""`DriveUpdatedFilesOnly`: what a reader remembers of the files it read, between runs.

Each file's size and version (mtime, or the S3 ETag) is kept in `state.json` under
`<data dir>/stage/drive/<job>/`, written only when the run succeeds (`commit`). A new or
changed file is read; an unchanged one is skipped. A job with upsert keys compares every row
with its last run to find deletes, so an unchanged file's rows are replayed from a snapshot
the reader kept when it last read the file (a change-log-format file beside the state) instead
of being fetched and parsed again; without keys, unchanged files are simply skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobs.sync.changelog import ChangeLogReader, ChangeLogWriter, Header, safe_file_part
from jobs.systems.batch import Batch, Column
from jobs.systems.drive.location import FileEntry

STATE_FILE = "state.json"


class FileMemory:
    def __init__(self, folder: Path, fingerprint: str, *, snapshots: bool) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.snapshots = snapshots
        self.remembered: dict[str, dict[str, Any]] = {}
        state = folder / STATE_FILE
        if state.exists():
            try:
                saved = json.loads(state.read_text())
            except ValueError:
                saved = {}
            if saved.get("fingerprint") == fingerprint and saved.get("snapshots") == snapshots:
                self.remembered = dict(saved.get("files") or {})
        self.seen: dict[str, dict[str, Any]] = {}
        self._written: list[Path] = []
        self._remove_orphans()

    @classmethod
    def for_job(
        cls, data_dir: Path, job_key: str, fingerprint: str, *, snapshots: bool
    ) -> FileMemory:
        folder = data_dir / "stage" / "drive" / safe_file_part(job_key)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder, fingerprint, snapshots=snapshots)

    def _remove_orphans(self) -> None:
        # Snapshots of a run that did not succeed are referred to by no state: remove them.
        kept = {entry.get("snapshot") for entry in self.remembered.values()}
        for path in self.folder.glob("*.eds"):
            if path.name not in kept:
                path.unlink(missing_ok=True)

    def unchanged(self, entry: FileEntry) -> bool:
        known = self.remembered.get(entry.path)
        if known is None or known["size"] != entry.size or known["version"] != entry.version:
            return False
        # Without its snapshot an unchanged file must be read again.
        return not self.snapshots or (self.folder / str(known.get("snapshot") or "-")).exists()

    def keep(self, entry: FileEntry) -> None:
        """An unchanged file stays remembered as it was."""
        self.seen[entry.path] = self.remembered[entry.path]

    def replay(self, entry: FileEntry) -> Iterator[Batch]:
        with ChangeLogReader(self.folder / self.remembered[entry.path]["snapshot"]) as log:
            columns = log.header.columns
            for frame in log.frames():
                yield Batch(columns, frame.rows)

    def snapshot(self, entry: FileEntry, columns: list[Column]) -> ChangeLogWriter | None:
        """Where the rows read from `entry` are copied (None without snapshots)."""
        if not self.snapshots:
            return None
        name = f"{uuid.uuid4().hex}.eds"
        path = self.folder / name
        self._written.append(path)
        return ChangeLogWriter(path, Header("snapshot", "0", columns, []))

    def read(self, entry: FileEntry, snapshot: ChangeLogWriter | None) -> None:
        """`entry` was read whole (and its snapshot written)."""
        if snapshot is not None:
            snapshot.commit()
        self.seen[entry.path] = {
            "size": entry.size,
            "version": entry.version,
            "snapshot": snapshot.path.name if snapshot is not None else "",
        }

    def commit(self) -> None:
        """The run succeeded: remember what it saw (files gone since are forgotten)."""
        state = {"fingerprint": self.fingerprint, "snapshots": self.snapshots, "files": self.seen}
        partial = self.folder / f".{STATE_FILE}.part"
        partial.write_text(json.dumps(state))
        os.replace(partial, self.folder / STATE_FILE)
        self.remembered = dict(self.seen)
        self._remove_orphans()

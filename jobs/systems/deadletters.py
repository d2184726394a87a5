"""Dead-letter files: JSON lines, one per request (HTTP writers) or message (consumers) that
could not be delivered or read, replayed by `manage.py replaydeadletters FILE`.

A run appends to a file while an operator may replay it: both hold the file's lock (a sidecar
`.lock` file, since a replay replaces the file and a lock on the old inode would let an append
land in the replaced copy), so no line is lost between the replay's read and its rewrite.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings


class DeadLetterError(ValueError):
    """A file that is not a dead-letter file under the data directory, or a line that is not an
    entry."""


@dataclass
class ReplayResult:
    delivered: int = 0
    still_failing: int = 0
    rows_delivered: int = 0


def dead_letter_file(name: str) -> Path:
    """A dead-letter file named absolutely or relative to the data directory, inside it only."""
    data = Path(settings.DATA_DIR).resolve()
    path = Path(name)
    path = (path if path.is_absolute() else data / path).resolve()
    if not path.is_relative_to(data):
        raise DeadLetterError(f"{name} is not under the data directory {data}.")
    if not path.is_file():
        raise DeadLetterError(f"{name}: no such dead-letter file.")
    return path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append(path: Path, entries: list[dict[str, Any]]) -> None:
    """Add entries and make them durable before the caller moves on (acknowledges a message,
    records a writer's position)."""
    with locked(path), open(path, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
        handle.flush()
        os.fsync(handle.fileno())


def entries(path: Path) -> list[dict[str, Any]]:
    """Every entry of the file (call under `locked`)."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DeadLetterError(f"{path.name} line {number} is not JSON: {exc}") from None
        if not isinstance(entry, dict):
            raise DeadLetterError(f"{path.name} line {number} is not a dead-letter entry.")
        found.append(entry)
    return found


def keep_only(path: Path, kept: list[dict[str, Any]]) -> None:
    """Rewrite the file with the entries still undelivered (call under `locked`)."""
    partial = path.with_name(path.name + ".replaying")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(entry, ensure_ascii=False) + "\n" for entry in kept)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)

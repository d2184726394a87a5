"""Dead-letter files of HTTP writers: one JSON line per request that could not be delivered,
replayable once the service is back (`manage.py replaydeadletters FILE`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from jobs.connections import resolve
from jobs.models import ConnectionType
from jobs.systems.http.client import HttpRequestError, client_for


class DeadLetterError(ValueError):
    """A file that is not a dead-letter file under the data directory."""


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


def replay(path: Path) -> ReplayResult:
    """Send every entry again through its writer's stored connection; keep those that fail."""
    result = ReplayResult()
    kept: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            connection = resolve(entry["connection"], kind=ConnectionType.HTTP)
            method, uri, body = entry["method"], entry["uri"], entry["body"]
            headers = [tuple(pair) for pair in entry["headers"]]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DeadLetterError(
                f"{path.name} line {number} is not a dead-letter entry: {exc}"
            ) from None
        client = client_for(connection.key, connection.value)
        try:
            client.request(method, uri, headers=headers, content=body or None)  # type: ignore[arg-type]
        except HttpRequestError as exc:
            entry["error"] = str(exc)
            entry["status"] = exc.status
            kept.append(json.dumps(entry, ensure_ascii=False))
            result.still_failing += 1
            continue
        result.delivered += 1
        result.rows_delivered += int(entry.get("rows", 1))
    partial = path.with_suffix(".replaying")
    partial.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    os.replace(partial, path)
    return result

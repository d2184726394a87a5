"""Replaying an HTTP writer's dead-letter file once the service is back: each request is sent
again through its writer's stored connection; those delivered leave the file."""

from __future__ import annotations

from pathlib import Path

from jobs.connections import resolve
from jobs.models import ConnectionType
from jobs.systems import deadletters
from jobs.systems.deadletters import DeadLetterError, ReplayResult
from jobs.systems.http.client import HttpRequestError, client_for


def replay(path: Path) -> ReplayResult:
    """Send every entry again; keep those that fail, with their new error."""
    result = ReplayResult()
    with deadletters.locked(path):
        kept = []
        for number, entry in enumerate(deadletters.entries(path), 1):
            try:
                reference, method, uri = entry["connection"], entry["method"], entry["uri"]
                body, headers = entry["body"], [tuple(pair) for pair in entry["headers"]]
            except (KeyError, TypeError) as exc:
                raise DeadLetterError(
                    f"{path.name} entry {number} is not an HTTP writer's dead letter: no {exc}"
                ) from None
            try:
                # The connection as stored now: a replay after a fixed password or URL works.
                connection = resolve(reference, kind=ConnectionType.HTTP)
                client = client_for(connection.key, connection.value)
                client.request(method, uri, headers=headers, content=body or None)  # type: ignore[arg-type]
            except HttpRequestError as exc:
                kept.append({**entry, "error": str(exc), "status": exc.status})
                result.still_failing += 1
                continue
            except ValueError as exc:  # no such connection any more, or refused by the guard
                kept.append({**entry, "error": str(exc)})
                result.still_failing += 1
                continue
            result.delivered += 1
            result.rows_delivered += int(entry.get("rows", 1))
        deadletters.keep_only(path, kept)
    return result

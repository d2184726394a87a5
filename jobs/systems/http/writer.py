"""An HTTP target: change-log rows sent as requests built from `UpsertScript`/`DeleteScript`.

One request per row, or per `BatchCount` rows. A request that still fails after the
connection's own retries is retried per `ErrorHandling`, then failed, skipped or written to a
dead-letter file (replayable: `manage.py replaydeadletters`). There is no transaction on the
other side, so the writer's position is a small file under the data directory that moves
only past rows delivered, skipped or dead-lettered: a run that stops midway resumes there.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings

from jobs.sync.changelog import Frame, Header, job_folder
from jobs.sync.spec import WriterSpec
from jobs.systems import deadletters
from jobs.systems.base import ApplyHooks, ApplyResult, Reader, UnsupportedSystem
from jobs.systems.batch import Batch
from jobs.systems.http import template
from jobs.systems.http.client import HttpClient, HttpRequestError
from jobs.systems.http.settings import (
    DEAD_LETTER,
    FAIL,
    SKIP,
    HttpTargetRequest,
    unsupported_writer_settings,
    writer_settings,
)
from jobs.systems.positions import WriterPosition


def _data_dir() -> Path:
    return Path(django_settings.DATA_DIR)


def _pause(seconds: float, hooks: ApplyHooks) -> None:
    """Wait between ErrorHandling retries (RetryTTLSeconds can be minutes), stopping at
    once when the run is cancelled."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        hooks.check_cancel()
        time.sleep(min(left, 0.5))


class HttpWriter:
    def __init__(self, client: HttpClient, spec: WriterSpec, writer_guid: str) -> None:
        where = f"Job writer '{spec.job_key}'"
        self.client = client
        self.spec = spec
        self.guid = writer_guid
        self.position = WriterPosition(_data_dir() / "http_writers", writer_guid)
        self.where = where
        self.settings = writer_settings(spec.target_definition, where)
        unsupported = unsupported_writer_settings(spec.target_definition)
        if unsupported:
            raise UnsupportedSystem(
                f"{where}: {', '.join(unsupported)} not supported by this gateway."
            )
        if not self.settings.upsert.configured:
            raise UnsupportedSystem(
                f"{where} writes to an HTTP connection but has no UpsertScript or "
                "HttpUpsertSettings.HTTPURI."
            )
        if spec.propagate_delete and not self.settings.delete.configured:
            raise UnsupportedSystem(
                f"{where} has PropagateDelete but no DeleteScript or HttpDeleteSettings.HTTPURI "
                "to send deletes with."
            )
        folder = self.settings.errors.dead_letter_path
        self.dead_letter_file = (
            job_folder(_data_dir(), folder) if folder else _data_dir() / "deadletter"
        ) / f"{spec.job_key or writer_guid}.jsonl"

    # -- position --------------------------------------------------------------------------------
    def applied_position(self) -> str:
        return self.position.applied()

    # -- apply -----------------------------------------------------------------------------------
    def apply(
        self,
        header: Header,
        frames: Iterable[Frame],
        execution_id: str,
        hooks: ApplyHooks,
        *,
        recreate: bool = False,
    ) -> ApplyResult:
        state = self.position.start(
            execution_id,
            hooks,
            recreate=recreate,
            target="an HTTP target",
            done="the rows already delivered",
        )
        if state is None:
            return ApplyResult(applied=False)
        applied = state.applied
        resume = state.resume_at(execution_id)
        counts = {"upserts": 0, "deletes": 0, "dead": 0, "skipped": 0, "ignored": 0}
        for index, frame in enumerate(frames):
            hooks.check_cancel()
            if index < resume[0]:
                continue
            if frame.is_delete:
                if not self.spec.propagate_delete:
                    continue
                names = header.keys
                rows = [dict(zip(names, key, strict=False)) for key in frame.rows]
                target, op = self.settings.delete, "delete"
                markup: frozenset[str] = frozenset()
            else:
                batch = hooks.transform(Batch(header.columns, frame.rows))
                names = batch.names
                rows = [dict(zip(names, row, strict=True)) for row in batch.rows]
                target, op = self.settings.upsert, "upsert"
                markup = frozenset(c.name.lower() for c in batch.columns if c.markup)
            start = resume[1] if index == resume[0] else 0
            size = self.settings.batch_count
            for at in range(start, len(rows), size):
                hooks.check_cancel()
                chunk = rows[at : at + size]
                outcome = self._deliver(target, op, chunk, execution_id, hooks, markup)
                counts[outcome if outcome != "delivered" else op + "s"] += len(chunk)
                self.position.save(applied, execution_id, index, at + len(chunk))
                hooks.progress(counts["upserts"], counts["deletes"])
                hooks.after_chunk(len(chunk))
            self.position.save(applied, execution_id, index + 1, 0)
        self.position.save(execution_id)
        hooks.log(
            f"HTTP target: {counts['upserts']} upserts and {counts['deletes']} deletes delivered"
            + (
                f", {counts['ignored']} rows answered an ignored error code"
                if counts["ignored"]
                else ""
            )
            + (f", {counts['skipped']} rows skipped after failing" if counts["skipped"] else "")
            + (
                f", {counts['dead']} rows written to the dead-letter file "
                f"{self.dead_letter_file.relative_to(_data_dir())}"
                if counts["dead"]
                else ""
            )
            + "."
        )
        return ApplyResult(applied=True, upserts=counts["upserts"], deletes=counts["deletes"])

    def _render(
        self,
        target: HttpTargetRequest,
        rows: list[dict[str, Any]],
        markup: frozenset[str] = frozenset(),
    ) -> tuple[str, str, list[tuple[str, str]], str]:
        request = target.request
        first = rows[0]
        where = f"{self.where}"
        uri = template.render_row(request.uri, first, template.url_escape, f"{where} HTTPURI")
        escape = template.escape_for(request.content_type, is_rest=request.is_rest)
        json_body = escape is template.json_escape
        body = (
            template.render_batch(
                target.script, rows, escape, f"{where} script", json_body=json_body, markup=markup
            )
            if target.script
            else (json.dumps(rows, default=template.as_text) if json_body else "")
        )
        headers = [
            (k, template.render_row(v, first, template.raw, f"{where} HTTPHeaders"))
            for k, v in request.headers
        ]
        if body and not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", request.content_type))
        return request.verb, uri, headers, body

    def _deliver(
        self,
        target: HttpTargetRequest,
        op: str,
        rows: list[dict[str, Any]],
        execution_id: str,
        hooks: ApplyHooks,
        markup: frozenset[str] = frozenset(),
    ) -> str:
        """Send one request; 'delivered', 'ignored', 'skipped' or 'dead' (or raise)."""
        verb, uri, headers, body = self._render(target, rows, markup)
        errors = self.settings.errors
        attempt = 0
        while True:
            try:
                self.client.request(verb, uri, headers=headers, content=body or None)
                return "delivered"
            except HttpRequestError as exc:
                if exc.status is not None and exc.status in target.ignore_codes:
                    return "ignored"
                if attempt < errors.retry_count:
                    wait = errors.retry_ttl_seconds * (
                        2**attempt if errors.retry_exponential else 1
                    )
                    _pause(wait, hooks)
                    attempt += 1
                    continue
                failure = exc
                break
        if errors.action == FAIL:
            raise HttpRequestError(
                f"{self.where}: {failure} ({len(rows)} row(s) not delivered; the next run "
                "starts again with them).",
                failure.status,
            ) from failure
        if errors.action == SKIP:
            hooks.log(f"{len(rows)} row(s) skipped (ActionOnFail 1): {failure}")
            return "skipped"
        assert errors.action == DEAD_LETTER
        self._dead_letter(verb, uri, headers, body, op, rows, execution_id, failure)
        return "dead"

    def _dead_letter(
        self,
        verb: str,
        uri: str,
        headers: list[tuple[str, str]],
        body: str,
        op: str,
        rows: list[dict[str, Any]],
        execution_id: str,
        failure: HttpRequestError,
    ) -> None:
        entry = {
            "connection": self.spec.connection,
            "writer": self.spec.job_key,
            "execution_id": execution_id,
            "op": op,
            "rows": len(rows),
            "method": verb,
            "uri": uri,
            "headers": headers,
            "body": body,
            "status": failure.status,
            "error": str(failure),
            "at": dt.datetime.now(dt.UTC).isoformat(),
        }
        deadletters.append(self.dead_letter_file, [entry])

    def run_script(self, script: str) -> None:
        raise UnsupportedSystem(
            f"{self.where}: InitScript/FinalScript are SQL; an HTTP target has nowhere to run them."
        )

    def streams_beside(self, reader: Reader) -> bool:
        # Requests cannot be rolled back: they go out only once the change log is durable.
        return False

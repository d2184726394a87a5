"""Change detection over a source's batches: full (synthetic CDC), timestamp, append-only.

Each strategy streams batches into the change log and returns what the reader commits once
that log is durable (the stage store, the timestamp pointers).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from jobs.sync.changelog import ChangeLogWriter, encode_frame, pickle_rows
from jobs.sync.stage import (
    StageStore,
    batch_digest,
    batch_keys,
    decode_key,
    encode_key,
    row_hash,
)
from jobs.systems.batch import Batch
from jobs.systems.db.reader import read_batches, wrap_since

if TYPE_CHECKING:
    from jobs.runner import ExecutionContext
    from jobs.sync.run import ReaderSpec


@dataclass
class DetectionResult:
    rows_read: int = 0
    sql_seconds: float = 0.0
    detect_seconds: float = 0.0
    pointer_text: str | None = None
    del_pointer_text: str | None = None
    commit_stage: Callable[[], None] = field(default=lambda: None)


PROGRESS_SECONDS = 0.5


def throttled(progress: Callable[..., None]) -> Callable[..., None]:
    """Counters saved at most twice a second: a save per batch would cost more than the batch."""
    last = [0.0]

    def report(**fields: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS:
            last[0] = now
            progress(**fields)

    return report


def key_positions(batch: Batch, keys: list[str], what: str = "UpsertColumns") -> list[int]:
    try:
        return [batch.index(key) for key in keys]
    except KeyError as exc:
        raise ValueError(
            f"{what} column {exc.args[0]!r} is not in the result "
            f"(columns: {', '.join(batch.names)})."
        ) from None


def _key_fn(positions: list[int]) -> Callable[[tuple], Any]:
    if len(positions) == 1:
        p = positions[0]
        return lambda row: encode_key((row[p],))
    return lambda row: encode_key(tuple(row[p] for p in positions))


def _timed(batches: Iterator[Batch], result: DetectionResult) -> Iterator[Batch]:
    # Split elapsed time between the source (SQL) and the engine's own work.
    while True:
        started = time.perf_counter()
        batch = next(batches, None)
        result.sql_seconds += time.perf_counter() - started
        if batch is None:
            return
        yield batch


def detect_full(
    *,
    ctx: ExecutionContext,
    engine: Engine,
    spec: ReaderSpec,
    stage: StageStore,
    pipeline: Callable[[Batch], Batch],
    open_log: Callable[[Batch], ChangeLogWriter],
    batch_size: int,
    full: bool,
) -> DetectionResult:
    """Compare every row's hash with the last run's, by key: inserts, updates, deletes."""
    result = DetectionResult(commit_stage=stage.commit)
    report = throttled(ctx.progress)
    stage.begin(full=full)
    if stage.full:
        ctx.log("No previous run to compare with (or resync): every row is sent.")
    positions: list[int] | None = None
    log: ChangeLogWriter | None = None
    for batch in _timed(
        read_batches(engine, spec.sql, batch_size=batch_size, limit=spec.top_n), result
    ):
        started = time.perf_counter()
        ctx.raise_if_cancelled()
        batch = pipeline(batch)
        log = open_log(batch)
        if positions is None:
            positions = key_positions(batch, spec.keys)
        rows = batch.rows
        keys = batch_keys(rows, positions)
        encoded = encode_frame(rows, [c.type for c in batch.columns])
        pickled, ends = pickle_rows(encoded[1])
        changed = stage.changed(
            keys, partial(stage.row_hashes, pickled, ends), batch_digest(pickled) if keys else None
        )
        if len(changed) == len(rows):
            log.write_upserts(rows, encoded, pickled)
        elif changed:
            starts = [0, *ends]
            log.write_upserts(
                [rows[i] for i in changed],
                (encoded[0], [encoded[1][i] for i in changed]),
                b"".join(pickled[starts[i] : ends[i]] for i in changed),
            )
        result.rows_read += len(rows)
        result.detect_seconds += time.perf_counter() - started
        report(records_available=result.rows_read, record_count=log.upserts)
    assert log is not None
    if spec.top_n is not None:
        ctx.warning("TopNOverride limits the read: deleted records are not detected.")
    else:
        width = len(spec.keys)
        for stored in stage.deleted(batch_size):
            ctx.raise_if_cancelled()
            log.write_deletes([decode_key(k, width) for k in stored])
    ctx.log(f"{result.rows_read} rows read; {log.upserts} new or changed, {log.deletes} deleted.")
    return result


def detect_append(
    *,
    ctx: ExecutionContext,
    engine: Engine,
    spec: ReaderSpec,
    stage: StageStore,
    pipeline: Callable[[Batch], Batch],
    open_log: Callable[[Batch], ChangeLogWriter],
    batch_size: int,
) -> DetectionResult:
    """No keys, no timestamp: every row read is appended to the target."""
    result = DetectionResult()
    report = throttled(ctx.progress)
    log: ChangeLogWriter | None = None
    for batch in _timed(
        read_batches(engine, spec.sql, batch_size=batch_size, limit=spec.top_n), result
    ):
        ctx.raise_if_cancelled()
        batch = pipeline(batch)
        log = open_log(batch)
        log.write_upserts(batch.rows)
        result.rows_read += len(batch.rows)
        report(records_available=result.rows_read, record_count=log.upserts)
    ctx.log(f"{result.rows_read} rows read; all appended.")
    return result


# -- timestamp ---------------------------------------------------------------------------------
_NEVER = ("", "0001-01-01")


def parse_pointer(text: str | None) -> Any:
    """A stored LastTsPointer as a value to compare with: int, datetime or text."""
    text = (text or "").strip()
    if not text or text.startswith(_NEVER[1]) or text.lower() in ("null", "none"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text


def format_pointer(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | int | float):
        return str(value)
    return str(value)


def _row_identity(batch: Batch, keys: list[str]) -> Callable[[tuple], str]:
    """How a row sent at the pointer is recognised later: its key and its content."""
    keyed = _key_fn(key_positions(batch, keys)) if keys else None

    def identity(row: tuple) -> str:
        digest = str(row_hash(row))
        return f"{keyed(row)!r}|{digest}" if keyed else digest

    return identity


def _key_identity(key: tuple) -> str:
    return repr(encode_key(key))


class _Pointer:
    """A high-water mark and the identities of the rows sent at exactly that mark."""

    def __init__(self, stage: StageStore, name: str, text: str | None, *, full: bool) -> None:
        self.stage = stage
        self.name = name
        saved = None if full else stage.get_meta(name)
        self.value: Any = None
        self.boundary: set[str] = set()
        if not full and (text or "").strip():
            if saved is not None and saved["text"] == text:
                # The stage knows the typed value and which rows at it were already sent.
                self.value = saved["value"]
                self.boundary = set(saved["boundary"])
            else:
                self.value = parse_pointer(text)
        self.max: Any = self.value
        # The rows at the current maximum; identities are computed for them only at the end,
        # since rows read in timestamp order each become the maximum in turn.
        self._kept: set[str] = set(self.boundary)
        self._rows: list[tuple] = []

    def already_sent(self, ts: Any, identity: str) -> bool:
        return self.value is not None and ts == self.value and identity in self.boundary

    def saw(self, ts: Any, row: tuple) -> None:
        if ts is None:
            return
        try:
            newer = self.max is None or ts > self.max
        except TypeError:  # a pointer typed from its text (int, timestamp) vs a text column
            newer = type(ts) is not type(self.max) and self.max == self.value
        if newer:
            self.max = ts
            self._kept = set()
            self._rows = [row]
        elif ts == self.max:
            self._rows.append(row)

    def text(self) -> str | None:
        return None if self.max is None else format_pointer(self.max)

    def save(self, identity: Callable[[tuple], str]) -> None:
        if self.max is None:
            return
        boundary = self._kept | {identity(row) for row in self._rows}
        self.stage.set_meta(
            self.name, {"text": self.text(), "value": self.max, "boundary": sorted(boundary)}
        )


def detect_timestamp(
    *,
    ctx: ExecutionContext,
    engine: Engine,
    spec: ReaderSpec,
    stage: StageStore,
    pipeline: Callable[[Batch], Batch],
    open_log: Callable[[Batch], ChangeLogWriter],
    batch_size: int,
    full: bool,
    pointer_text: str,
    del_pointer_text: str,
) -> DetectionResult:
    """Rows at or past LastTsPointer; rows at the pointer already sent are dropped."""
    stage.begin(full=True)
    if full:
        stage.reset()
    pointer = _Pointer(stage, "ts_pointer", pointer_text, full=full)
    del_pointer = _Pointer(stage, "ts_del_pointer", del_pointer_text, full=full)

    identities: list[Callable[[tuple], str]] = []

    def commit() -> None:
        if identities:
            pointer.save(identities[0])
        del_pointer.save(_key_identity)
        stage.commit()

    result = DetectionResult(commit_stage=commit)
    report = throttled(ctx.progress)
    # Deletes go first in the log: a key deleted and then inserted again ends up present.
    deletes: list[tuple] = []
    if spec.deleted_method and spec.deleted_sql:
        deletes = _deleted_records(ctx, engine, spec, del_pointer, batch_size)
    if pointer.value is None:
        ctx.log("No LastTsPointer: reading every row.")
        source = read_batches(engine, spec.sql, batch_size=batch_size, limit=spec.top_n)
    else:
        ctx.log(f"Reading rows with {spec.timestamp_col} >= {format_pointer(pointer.value)}.")
        sql = wrap_since(engine, spec.sql, spec.timestamp_col)
        source = read_batches(
            engine, sql, params=(pointer.value,), batch_size=batch_size, limit=spec.top_n
        )
    log: ChangeLogWriter | None = None
    skipped = 0
    for batch in _timed(source, result):
        started = time.perf_counter()
        ctx.raise_if_cancelled()
        batch = pipeline(batch)
        log = open_log(batch)
        if deletes:
            log.write_deletes(deletes)
            deletes = []
        ts_at = key_positions(batch, [spec.timestamp_col], "TimestampCol")[0]
        if not identities:
            identities.append(_row_identity(batch, spec.keys))
        identity = identities[0]
        fresh = []
        for row in batch.rows:
            ts = row[ts_at]
            if ts == pointer.value and pointer.already_sent(ts, identity(row)):
                skipped += 1
                continue
            pointer.saw(ts, row)
            fresh.append(row)
        log.write_upserts(fresh)
        result.rows_read += len(batch.rows)
        result.detect_seconds += time.perf_counter() - started
        report(records_available=result.rows_read, record_count=log.upserts)
    assert log is not None
    if skipped:
        ctx.log(f"{skipped} rows at the pointer were sent by an earlier run: skipped.")
    ctx.log(f"{result.rows_read} rows read; {log.upserts} sent, {log.deletes} deleted.")
    result.pointer_text = pointer.text()
    if spec.deleted_method and spec.deleted_sql:
        result.del_pointer_text = del_pointer.text()
    return result


def _deleted_records(
    ctx: ExecutionContext,
    engine: Engine,
    spec: ReaderSpec,
    pointer: _Pointer,
    batch_size: int,
) -> list[tuple]:
    """Keys returned by DeletedRecordsSQL (past LastTsDelPointer when it has the TimestampCol)."""
    if not spec.keys:
        raise ValueError("DeletedRecordsSQL needs UpsertColumns to know which rows to delete.")
    if pointer.value is None:
        source = read_batches(engine, spec.deleted_sql, batch_size=batch_size)
    else:
        sql = wrap_since(engine, spec.deleted_sql, spec.timestamp_col)
        source = read_batches(engine, sql, params=(pointer.value,), batch_size=batch_size)
    found: list[tuple] = []
    for batch in source:
        ctx.raise_if_cancelled()
        names = [n.lower() for n in batch.names]
        if all(k.lower() in names for k in spec.keys):
            positions = key_positions(batch, spec.keys)
        else:
            positions = list(range(len(spec.keys)))
        ts_at = (
            names.index(spec.timestamp_col.lower()) if spec.timestamp_col.lower() in names else None
        )
        for row in batch.rows:
            key = tuple(row[p] for p in positions)
            if ts_at is not None:
                ts = row[ts_at]
                if ts == pointer.value and pointer.already_sent(ts, _key_identity(key)):
                    continue
                pointer.saw(ts, key)
            found.append(key)
    ctx.log(f"DeletedRecordsSQL returned {len(found)} deleted records.")
    return found

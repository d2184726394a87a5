"""Change detection: one loop over a source's batches, with a strategy per kind of sync.

`detect` reads, runs the pipeline, and hands each batch to the strategy, which writes what
changed to the change log: `FullStrategy` (synthetic CDC by row hash against the stage store),
`TimestampStrategy` (rows past the pointer), `AppendStrategy` (every row). What the strategy
keeps (stage store, pointers) is committed by the run once the change log is durable.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from jobs.runner import ExecutionContext
from jobs.sync.changelog import ChangeLogWriter, encode_frame, pickle_rows
from jobs.sync.spec import ReaderSpec
from jobs.sync.stage import (
    StageStore,
    batch_digest,
    batch_keys,
    decode_key,
    encode_key,
    row_hash,
    rows_digest,
)
from jobs.systems.base import Reader, RowHashing, Since
from jobs.systems.batch import Batch


@dataclass
class DetectionResult:
    rows_read: int = 0
    sql_seconds: float = 0.0
    detect_seconds: float = 0.0
    pointer_text: str | None = None
    del_pointer_text: str | None = None
    commit_stage: Callable[[], None] = field(default=lambda: None)


PROGRESS_SECONDS = 0.5
DELETE_BATCH_ROWS = 10_000


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


class Strategy(Protocol):
    """How one kind of sync turns the source's batches into changes."""

    def batches(self, reader: Reader, batch_size: int) -> Iterator[Batch]: ...

    def estimate(self, reader: Reader) -> int | None:
        """The rows this run is expected to read, from the source's own estimate; None when
        there is none for what this strategy reads."""
        ...

    def take(self, batch: Batch, log: ChangeLogWriter) -> None: ...

    def finish(self, log: ChangeLogWriter, result: DetectionResult) -> None: ...

    def commit(self) -> None:
        """Keep what this run saw (stage store, pointers): called once the log is durable."""
        ...


def detect(
    *,
    ctx: ExecutionContext,
    reader: Reader,
    strategy: Strategy,
    pipeline: Callable[[Batch], Batch],
    open_log: Callable[[Batch], ChangeLogWriter],
    batch_size: int,
) -> DetectionResult:
    """Read every batch through the pipeline into the strategy; the change log gets the rest."""
    result = DetectionResult(commit_stage=strategy.commit)
    estimate = strategy.estimate(reader)
    if estimate is not None:
        ctx.progress(rows_estimate=estimate)
    report = throttled(ctx.progress)
    log: ChangeLogWriter | None = None
    for batch in _timed(strategy.batches(reader, batch_size), result):
        started = time.perf_counter()
        ctx.raise_if_cancelled()
        batch = pipeline(batch)
        log = open_log(batch)
        strategy.take(batch, log)
        result.rows_read += len(batch.rows)
        result.detect_seconds += time.perf_counter() - started
        report(records_available=result.rows_read, record_count=log.upserts)
    assert log is not None  # every source yields at least one (maybe empty) batch
    strategy.finish(log, result)
    return result


def whole_read_estimate(reader: Reader, spec: ReaderSpec) -> int | None:
    estimate = reader.estimate_rows()
    if estimate is None or spec.top_n is None:
        return estimate
    return min(estimate, spec.top_n)


def strategy_for(
    ctx: ExecutionContext,
    spec: ReaderSpec,
    stage: StageStore,
    *,
    full: bool,
    pointer_text: str = "",
    del_pointer_text: str = "",
    source_hash: str = "",
) -> Strategy:
    if spec.strategy == "timestamp":
        return TimestampStrategy(
            ctx,
            spec,
            stage,
            full=full,
            pointer_text=pointer_text,
            del_pointer_text=del_pointer_text,
        )
    if spec.strategy == "full":
        return FullStrategy(ctx, spec, stage, full=full, source_hash=source_hash)
    return AppendStrategy(ctx, spec)


def source_hash(reader: Reader, spec: ReaderSpec) -> str:
    """The scheme of row digests the source computes for this job ('' : the gateway hashes).

    Only where the source's rows are the rows compared: a pipeline changes them, TopNOverride
    reads a different set of rows each time.
    """
    if (
        spec.strategy != "full"
        or not spec.keys
        or spec.pipeline
        or spec.top_n is not None
        or not reader.pushdown.row_hash
    ):
        return ""
    return cast(RowHashing, reader).hash_scheme()


class FullStrategy:
    """Compare every row's hash with the last run's, by key: inserts, updates, deletes.

    With `source_hash` the source hashes its rows (`RowHashing`): a run with a previous one to
    compare with reads keys and digests only, then the rows that changed, by key.
    """

    def __init__(
        self,
        ctx: ExecutionContext,
        spec: ReaderSpec,
        stage: StageStore,
        *,
        full: bool,
        source_hash: str = "",
    ) -> None:
        self.ctx, self.spec, self.stage = ctx, spec, stage
        self.source_hash = source_hash
        stage.begin(full=full, hash_name=source_hash or None)
        if stage.full:
            ctx.log("No previous run to compare with (or resync): every row is sent.")
        elif stage.resend:
            ctx.log(
                f"The last run's row hashes are not comparable with this run's "
                f"({source_hash or 'hashed by the gateway'}): every row is sent once."
            )
        self.positions: list[int] | None = None
        self.compared = False  # batches already hold only the changed rows
        self.rows_read = 0

    def batches(self, reader: Reader, batch_size: int) -> Iterator[Batch]:
        if not self.source_hash:
            return reader.batches(batch_size=batch_size, limit=self.spec.top_n)
        hashing = cast(RowHashing, reader)
        if self.stage.full or self.stage.resend:
            return hashing.hashed_batches(batch_size=batch_size)
        self.ctx.log("Rows are hashed in the source: reading keys and digests, then changed rows.")
        self.compared = True
        return self._changed_rows(hashing, batch_size)

    def _changed_rows(self, reader: RowHashing, batch_size: int) -> Iterator[Batch]:
        """The rows whose digest differs from the last run's, read by key batch by batch."""
        keys, width = self.spec.keys, len(self.spec.keys)
        positions = list(range(width))
        report = throttled(self.ctx.progress)
        sent = False
        # Changed keys wait for a batch's worth: a few rows per digest batch (1% changed) would
        # otherwise cost a statement, a change-log frame and a writer round trip each.
        wanted: list[tuple] = []
        for digests in reader.digests(keys=keys, batch_size=batch_size):
            self.ctx.raise_if_cancelled()
            assert digests.hashes is not None
            self.rows_read += len(digests.rows)
            stored = batch_keys(digests.rows, positions)
            changed = self.stage.changed(stored, digests.hashes, _digest(stored, digests.hashes))
            wanted += [digests.rows[i] for i in changed]
            if len(wanted) >= batch_size:
                for batch in reader.rows_by_key(keys=keys, values=wanted, batch_size=batch_size):
                    sent = True
                    yield batch
                wanted = []
            report(records_available=self.rows_read)
        for batch in reader.rows_by_key(keys=keys, values=wanted, batch_size=batch_size):
            sent = True
            yield batch
        if not sent:  # the change log's header needs the columns, even with no row to send
            yield from reader.rows_by_key(keys=keys, values=[], batch_size=batch_size)

    def estimate(self, reader: Reader) -> int | None:
        return whole_read_estimate(reader, self.spec)

    def take(self, batch: Batch, log: ChangeLogWriter) -> None:
        if self.compared:
            log.write_upserts(batch.rows)
            return
        if self.positions is None:
            self.positions = key_positions(batch, self.spec.keys)
        stage = self.stage
        rows = batch.rows
        if batch.hashes is not None:
            keys = batch_keys(rows, self.positions)
            changed = stage.changed(keys, batch.hashes, _digest(keys, batch.hashes))
            if len(changed) == len(rows):
                log.write_upserts(rows)
            elif changed:
                log.write_upserts([rows[i] for i in changed])
            return
        if not rows:
            return
        encoded = encode_frame(rows, [c.type for c in batch.columns])
        # A batch equal to one of the last run is found by its digest alone: its keys are not
        # gathered, its rows neither pickled one by one nor hashed.
        digest = rows_digest(encoded[1])
        if len(self.positions) == 1:
            p = self.positions[0]
            if stage.unchanged(rows[0][p], rows[-1][p], len(rows), digest):
                return
        keys = batch_keys(rows, self.positions)
        each: list[Any] = []  # the rows pickled one by one and their hashes, once needed

        def row_hashes() -> list[int]:
            # The store may ask more than once (a first load's batch it then does not merge).
            if not each:
                pickled, ends = pickle_rows(encoded[1])
                each.extend((pickled, ends, stage.row_hashes(pickled, ends)))
            return each[2]

        changed = stage.changed(keys, row_hashes, digest)
        if not changed:
            return
        pickled, ends = each[:2] or pickle_rows(encoded[1])
        if len(changed) == len(rows):
            log.write_upserts(rows, encoded, pickled)
        else:
            starts = [0, *ends]
            log.write_upserts(
                [rows[i] for i in changed],
                (encoded[0], [encoded[1][i] for i in changed]),
                b"".join(pickled[starts[i] : ends[i]] for i in changed),
            )

    def finish(self, log: ChangeLogWriter, result: DetectionResult) -> None:
        if self.compared:
            result.rows_read = self.rows_read  # every row's digest was read, not the row
        if self.spec.top_n is not None:
            self.ctx.warning("TopNOverride limits the read: deleted records are not detected.")
        else:
            width = len(self.spec.keys)
            for stored in self.stage.deleted(DELETE_BATCH_ROWS):
                self.ctx.raise_if_cancelled()
                log.write_deletes([decode_key(k, width) for k in stored])
        self.ctx.log(
            f"{result.rows_read} rows read; {log.upserts} new or changed, {log.deletes} deleted."
        )

    def commit(self) -> None:
        self.stage.commit()


def _digest(keys: list[Any], hashes: list[int]) -> int | None:
    """A batch's digest from its int keys and row digests (the stage store skips a segment
    of the last run equal to it); None when the keys are not plain 64-bit ints."""
    try:
        return batch_digest(array("q", keys).tobytes() + array("q", hashes).tobytes())
    except (TypeError, OverflowError):
        return None


class AppendStrategy:
    """No keys, no timestamp: every row read is appended to the target."""

    def __init__(self, ctx: ExecutionContext, spec: ReaderSpec) -> None:
        self.ctx, self.spec = ctx, spec

    def batches(self, reader: Reader, batch_size: int) -> Iterator[Batch]:
        return reader.batches(batch_size=batch_size, limit=self.spec.top_n)

    def estimate(self, reader: Reader) -> int | None:
        return whole_read_estimate(reader, self.spec)

    def take(self, batch: Batch, log: ChangeLogWriter) -> None:
        log.write_upserts(batch.rows)

    def finish(self, log: ChangeLogWriter, result: DetectionResult) -> None:
        self.ctx.log(f"{result.rows_read} rows read; all appended.")

    def commit(self) -> None:
        pass  # nothing is remembered between append runs


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


def _at_or_past(value: Any, pointer: Any) -> bool:
    """`value >= pointer` as the source's WHERE would say it; NULL is never past a pointer."""
    if value is None:
        return False
    try:
        return bool(value >= pointer)
    except TypeError:  # a pointer typed from its text (int, timestamp) vs a text column
        return str(value) >= str(pointer)


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


class TimestampStrategy:
    """Rows at or past LastTsPointer; rows at the pointer already sent are dropped."""

    def __init__(
        self,
        ctx: ExecutionContext,
        spec: ReaderSpec,
        stage: StageStore,
        *,
        full: bool,
        pointer_text: str,
        del_pointer_text: str,
    ) -> None:
        self.ctx, self.spec, self.stage = ctx, spec, stage
        stage.begin(full=True)
        if full:
            stage.reset()
        self.pointer = _Pointer(stage, "ts_pointer", pointer_text, full=full)
        self.del_pointer = _Pointer(stage, "ts_del_pointer", del_pointer_text, full=full)
        self.identity: Callable[[tuple], str] | None = None
        self.ts_at = -1
        self.deletes: list[tuple] = []
        self.skipped = 0
        self.tracks_deletes = bool(spec.deleted_method and spec.deleted_sql)
        self.filter_below = False

    def estimate(self, reader: Reader) -> int | None:
        # The source's figure is for the whole SqlRead; a run since the pointer reads a part.
        return whole_read_estimate(reader, self.spec) if self.pointer.value is None else None

    def batches(self, reader: Reader, batch_size: int) -> Iterator[Batch]:
        # Deletes go first in the log: a key deleted and then inserted again ends up present.
        if self.tracks_deletes:
            self.deletes = _deleted_records(
                self.ctx, reader, self.spec, self.del_pointer, batch_size
            )
        value = self.pointer.value
        if value is None:
            self.ctx.log("No LastTsPointer: reading every row.")
            return reader.batches(batch_size=batch_size, limit=self.spec.top_n)
        self.ctx.log(f"Reading rows with {self.spec.timestamp_col} >= {format_pointer(value)}.")
        if not reader.pushdown.since:
            # The source cannot filter: every row crosses, and `take` drops those before it.
            self.filter_below = True
            return reader.batches(batch_size=batch_size, limit=self.spec.top_n)
        return reader.batches(
            batch_size=batch_size,
            limit=self.spec.top_n,
            since=Since(self.spec.timestamp_col, value),
        )

    def take(self, batch: Batch, log: ChangeLogWriter) -> None:
        if self.deletes:
            log.write_deletes(self.deletes)
            self.deletes = []
        if self.identity is None:
            self.ts_at = key_positions(batch, [self.spec.timestamp_col], "TimestampCol")[0]
            self.identity = _row_identity(batch, self.spec.keys)
        identity, ts_at, pointer = self.identity, self.ts_at, self.pointer
        rows = batch.rows
        if self.filter_below:
            rows = [row for row in rows if _at_or_past(row[ts_at], pointer.value)]
        fresh = []
        for row in rows:
            ts = row[ts_at]
            if ts == pointer.value and pointer.already_sent(ts, identity(row)):
                self.skipped += 1
                continue
            pointer.saw(ts, row)
            fresh.append(row)
        log.write_upserts(fresh)

    def finish(self, log: ChangeLogWriter, result: DetectionResult) -> None:
        if self.skipped:
            self.ctx.log(
                f"{self.skipped} rows at the pointer were sent by an earlier run: skipped."
            )
        self.ctx.log(f"{result.rows_read} rows read; {log.upserts} sent, {log.deletes} deleted.")
        result.pointer_text = self.pointer.text()
        if self.tracks_deletes:
            result.del_pointer_text = self.del_pointer.text()

    def commit(self) -> None:
        if self.identity is not None:
            self.pointer.save(self.identity)
        self.del_pointer.save(_key_identity)
        self.stage.commit()


def _deleted_records(
    ctx: ExecutionContext,
    reader: Reader,
    spec: ReaderSpec,
    pointer: _Pointer,
    batch_size: int,
) -> list[tuple]:
    """Keys returned by DeletedRecordsSQL (past LastTsDelPointer when it has the TimestampCol)."""
    if not spec.keys:
        raise ValueError("DeletedRecordsSQL needs UpsertColumns to know which rows to delete.")
    since = None if pointer.value is None else Since(spec.timestamp_col, pointer.value)
    source = reader.deleted_keys(batch_size=batch_size, since=since)
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

"""The per-job stage store: what the previous run sent, for synthetic change detection.

One SQLite file per job under DATA_DIR/stage/. `state` holds (key, row hash) of the last
committed run; a run fills `next` beside it and `commit()` swaps them in one transaction, so
the store only advances once the change log is durable. `meta` keeps typed pointers.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import operator
import pickle
import sqlite3
import zlib
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import compress, count, islice
from pathlib import Path
from typing import Any

import xxhash

from jobs.sync.changelog import dumps, loads
from jobs.systems.pgcopy import CopyRows

_dumps = pickle.dumps
_crc32 = zlib.crc32
_adler32 = zlib.adler32
_xxh64 = xxhash.xxh3_64_intdigest
_SIGN = 1 << 63  # shifted into SQLite's signed 64-bit INTEGER range

MAX_CANDIDATES = 200_000
# A full run's batch that reaches back into the one before it is merged with it, up to this
# many batches in one segment; beyond, the run is out of order and moves to rows.
MERGED_BATCHES = 4

_INT64 = range(-(1 << 63), 1 << 63)  # what an SQLite INTEGER holds

# SQLite's default variable limit is 32766; stay well below it per lookup.
LOOKUP_CHUNK = 5000

# The store's SQLite page cache, in KiB (docs/decisions.md, issue 20's third pass: at 64 MB it
# was a fifth of a 5,000,000-row first load's resident memory).
CACHE_KB = 16 * 1024


def row_hash(row: tuple) -> int:
    """A stable 64-bit digest of a row's values and their types (pickle is deterministic).

    CRC-32 and Adler-32 side by side: two independent checksums computed in C, several times
    cheaper per row than a cryptographic hash; a change has to fool both to go unnoticed.
    """
    data = _dumps(row, 5)
    return (_crc32(data) << 32 | _adler32(data)) - _SIGN


def hashes_of(pickled: bytes, ends: Sequence[int]) -> list[int]:
    """Row hashes (as in `row_hash`) of rows pickled back to back (jobs.sync.changelog.pickle_rows).

    The full strategy hashes rows as the change log stores them (decimals, dates and
    timestamps as text, see jobs.sync.changelog.encode_frame), reusing the same bytes.
    """
    crc, adler, sign = _crc32, _adler32, _SIGN
    view = memoryview(pickled)
    hashes = []
    start = 0
    for end in ends:
        data = view[start:end]
        hashes.append((crc(data) << 32 | adler(data)) - sign)
        start = end
    return hashes


# The row hashes of a store: stores rebuilt (first run, resync, Initialize) since XXH3 came
# in use it; older ones keep CRC-32 + Adler-32 (`hashes_of`) until their next full run.
HASH_XXH3 = "xxh3-64"
HASH_CRC_ADLER = "crc32+adler32"


def xxh3_hashes_of(pickled: bytes, ends: Sequence[int]) -> list[int]:
    """Row hashes of rows pickled back to back, as `hashes_of`, with XXH3-64: one C call
    per row instead of two, about three times cheaper per batch."""
    xxh, sign = _xxh64, _SIGN
    view = memoryview(pickled)
    hashes = []
    start = 0
    for end in ends:
        hashes.append(xxh(view[start:end]) - sign)
        start = end
    return hashes


def batch_digest(pickled: bytes) -> int:
    """A 64-bit digest of a whole batch as pickled by jobs.sync.changelog.pickle_rows (every row's
    bytes back to back, keys included): two C calls over one buffer, however many rows."""
    return (_crc32(pickled) << 32 | _adler32(pickled)) - _SIGN


def rows_digest(rows: Sequence[tuple]) -> int:
    """A 64-bit digest of a whole batch of rows (keys included), for the stage store to tell a
    batch equal to one of the last run before any row is hashed: XXH3-64 over one pickle of
    the batch, two C calls however many rows, where the row hashes pickle each row on its own
    (a Python call per row). No memo, so the bytes depend on the values alone; pickle keeps
    types apart (NULL, '', 0, 0.0, False) and floats exact."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True  # rows hold scalars only, nothing refers back
    pickler.dump(rows if type(rows) is list else list(rows))
    return _xxh64(buffer.getbuffer()) - _SIGN


def _ascending(keys: Sequence[Any]) -> bool:
    """Plain ints, strictly increasing (so also without duplicates); compared in C."""
    return (
        bool(keys)
        and set(map(type, keys)) == {int}
        and all(map(operator.lt, keys, islice(keys, 1, None)))
    )


def _differing(before: Sequence[Any], now: Sequence[int]) -> list[int]:
    """Positions where two equally long lists differ (None, a key not there before, differs
    from every hash)."""
    return list(compress(count(), map(operator.ne, before, now)))


def batch_keys(rows: Sequence[tuple], positions: Sequence[int]) -> list[Any]:
    """Store identities of the rows' keys; plain ints and texts as they are (the common case)."""
    if len(positions) == 1:
        p = positions[0]
        # Rows still as COPY text (a PostgreSQL first load): an int key column parsed in C.
        ints = rows.ints(p) if isinstance(rows, CopyRows) else None
        keys: list[Any] = ints if ints is not None else [row[p] for row in rows]
        kinds = set(map(type, keys))
        if kinds == {int} and (not keys or (min(keys) in _INT64 and max(keys) in _INT64)):
            return keys
        if kinds == {str} and not any(k.startswith("[[") for k in keys):
            return keys
        return [encode_key((k,)) for k in keys]
    return [encode_key(tuple(row[p] for p in positions)) for row in rows]


def encode_key(values: tuple) -> Any:
    """The identity of a row's key in the store: the value itself for one int or text column
    (an int within SQLite's 64-bit range), otherwise a tagged JSON list."""
    if len(values) == 1:
        value = values[0]
        # Text that starts like the tagged form is tagged too, so decoding is unambiguous.
        if (type(value) is int and value in _INT64) or (
            type(value) is str and not value.startswith("[[")
        ):
            return value
    return json.dumps([_tag(value) for value in values], separators=(",", ":"))


def decode_key(stored: Any, width: int) -> tuple:
    if width == 1 and not (isinstance(stored, str) and stored.startswith("[[")):
        return (stored,)
    return tuple(_untag(tag, text) for tag, text in json.loads(stored))


def _tag(value: Any) -> list[Any]:
    # A tag per type keeps 1 and '1' (and 1.0) different keys, as they are in the source.
    if value is None:
        return ["n", None]
    if isinstance(value, bool):
        return ["B", int(value)]
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, decimal.Decimal):
        return ["d", str(value)]
    if isinstance(value, dt.datetime):
        return ["T", value.isoformat()]
    if isinstance(value, dt.date):
        return ["D", value.isoformat()]
    if isinstance(value, dt.time):
        return ["t", value.isoformat()]
    if isinstance(value, bytes | bytearray | memoryview):
        return ["b", bytes(value).hex()]
    return ["s", str(value)]


def _untag(tag: str, text: Any) -> Any:
    match tag:
        case "n":
            return None
        case "B":
            return bool(text)
        case "i":
            return int(text)
        case "f":
            return float(text)
        case "d":
            return decimal.Decimal(text)
        case "T":
            return dt.datetime.fromisoformat(text)
        case "D":
            return dt.date.fromisoformat(text)
        case "t":
            return dt.time.fromisoformat(text)
        case "b":
            return bytes.fromhex(text)
    return text


_SEGMENT_TABLE = (
    "CREATE TABLE IF NOT EXISTS {name} (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, "
    "n INTEGER NOT NULL, digest INTEGER, keys BLOB NOT NULL, hashes BLOB NOT NULL)"
)


SegmentHeader = tuple[int, int, int, int | None]  # a segment's first key, last key, rows, digest


def _ints(blob: bytes) -> list[int]:
    values = array("q")
    values.frombytes(blob)
    return values.tolist()


class _Segments:
    """The last run as segments: its pairs in key order, taken front to back by this run."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        # Headers only (a few per million rows); a segment's arrays are read when reached.
        self._headers = deque(
            tuple(row) for row in db.execute("SELECT lo, hi, n, digest FROM segment ORDER BY lo")
        )
        self.count = sum(header[2] for header in self._headers)
        self._keys: list[int] = []
        self._hashes: list[int] = []
        self._at = 0

    def take(self, bound: int | None) -> tuple[list[int], list[int]]:
        """The pairs not taken yet with a key below `bound` (None: all of them)."""
        keys: list[int] = []
        hashes: list[int] = []
        while True:
            if self._at < len(self._keys):
                end = len(self._keys) if bound is None else bisect_left(self._keys, bound, self._at)
                keys += self._keys[self._at : end]
                hashes += self._hashes[self._at : end]
                self._at = end
                if end < len(self._keys):
                    return keys, hashes
            if not self._headers or (bound is not None and self._headers[0][0] >= bound):
                return keys, hashes
            self._load(self._headers.popleft()[0])

    def rest(self) -> Iterator[list[int]]:
        """The keys not taken yet, a segment at a time."""
        while True:
            keys = self.take(self._headers[0][1] + 1 if self._headers else None)[0]
            if not keys:
                return
            yield keys

    def next_is(self, header: SegmentHeader) -> bool:
        """The next segment, untouched, is exactly this one (same range, rows and digest)."""
        return self._at >= len(self._keys) and bool(self._headers) and self._headers[0] == header

    def skip(self) -> int:
        return self._headers.popleft()[0]

    def _load(self, lo: int) -> None:
        keys, hashes = self._db.execute(
            "SELECT keys, hashes FROM segment WHERE lo = ?", (lo,)
        ).fetchone()
        self._keys, self._hashes, self._at = _ints(keys), _ints(hashes), 0

    def pairs(self) -> Iterator[tuple[list[int], list[int]]]:
        """Every pair of the last run, segment by segment (taken or not)."""
        for keys, hashes in self._db.execute("SELECT keys, hashes FROM segment ORDER BY lo"):
            yield _ints(keys), _ints(hashes)


class _Rows:
    """The last run as rows of the `state` table, taken front to back by key range."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.count = int(db.execute("SELECT count(*) FROM state").fetchone()[0])
        self._low: int | None = None

    def take(self, bound: int) -> tuple[list[int], list[int]]:
        """The pairs not taken yet with a key below `bound`; SQLite orders numbers before
        text, so text keys of an earlier run are left for `rest`."""
        if self._low is None:
            found = self._db.execute(
                "SELECT k, h FROM state WHERE k < ? ORDER BY k", (bound,)
            ).fetchall()
        else:
            found = self._db.execute(
                "SELECT k, h FROM state WHERE k >= ? AND k < ? ORDER BY k", (self._low, bound)
            ).fetchall()
        self._low = bound
        if not found:
            return [], []
        keys, hashes = zip(*found, strict=True)
        return list(keys), list(hashes)

    def rest(self) -> Iterator[list[Any]]:
        """The keys not taken yet (text keys of an earlier run included), a batch at a time."""
        where, params = ("WHERE k >= ?", (self._low,)) if self._low is not None else ("", ())
        cursor = self._db.execute(f"SELECT k FROM state {where} ORDER BY k", params)
        while rows := cursor.fetchmany(LOOKUP_CHUNK):
            yield [row[0] for row in rows]

    def next_is(self, header: SegmentHeader) -> bool:
        return False


class _Nothing:
    """A full run: nothing to compare with."""

    count = 0

    def take(self, bound: int) -> tuple[list[int], list[int]]:
        return [], []

    def rest(self) -> Iterator[list[Any]]:
        return iter(())

    def next_is(self, header: SegmentHeader) -> bool:
        return False


class StageStore:
    """Key → hash of the last committed run of one job.

    Two layouts, chosen by how the last run read its keys. Plain int keys in strictly
    increasing order (within and across batches): one `segment` row per batch, its keys and
    hashes as arrays, so a run costs a few rows instead of one per source row, and this run
    walks the last one front to back beside its own batches. Any other order: one `state` row
    per key, looked up by key. A run that starts in order and then is not moves to rows.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA temp_store=MEMORY")
        # The page cache fills with the run's own writes (a first load's segments: 16 bytes a
        # row), so its bound is the store's share of a run's memory; the last run's segments
        # are read once each, front to back, and gain little from it.
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KB}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS state (k PRIMARY KEY, h INTEGER) WITHOUT ROWID"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB)")
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(segment)")]
        if columns and "hashes" not in columns:
            # An earlier version kept batch digests only, beside a complete `state` table.
            self._db.execute("DROP TABLE segment")
        self._db.execute(_SEGMENT_TABLE.format(name="segment"))
        self._started = False
        self.full = False
        self.hash_name = HASH_XXH3

    def row_hashes(self, pickled: bytes, ends: Sequence[int]) -> list[int]:
        """The hashes of pickled rows (jobs.sync.changelog.pickle_rows) as this store keeps them."""
        if self.hash_name == HASH_XXH3:
            return xxh3_hashes_of(pickled, ends)
        return hashes_of(pickled, ends)

    # -- a run ------------------------------------------------------------------------------
    # A run works inside one SQLite transaction: what it finds is written as it goes and only
    # COMMIT makes it count, once the change log is durable.
    def begin(self, *, full: bool, hash_name: str | None = None) -> None:
        """Start a run; `full` ignores the previous state (first run, resync, Initialize).

        `hash_name`: the scheme of the hashes this run brings (digests computed by the source,
        jobs.systems.db.hashing); None when the store hashes rows itself (`row_hashes`). A store
        kept under another scheme cannot be compared with: every row is reported changed once
        (`resend`), while its keys still find the deletes.
        """
        self._db.execute("BEGIN IMMEDIATE")
        self._started = True
        self.full = full or self.is_empty()
        self.resend = False
        self._last: _Segments | _Rows | _Nothing | None
        if self.full:
            self._db.execute("DELETE FROM state")
            self._db.execute("DELETE FROM segment")
            self.hash_name = hash_name or HASH_XXH3
            self.set_meta("row_hash", self.hash_name)
            self._last = _Nothing()
        else:
            self.hash_name = self.get_meta("row_hash") or HASH_CRC_ADLER
            own = (HASH_XXH3, HASH_CRC_ADLER) if hash_name is None else (hash_name,)
            if self.hash_name not in own:
                self.resend = True
                self.hash_name = hash_name or HASH_XXH3
                self.set_meta("row_hash", self.hash_name)
            has_segments = self._db.execute("SELECT 1 FROM segment LIMIT 1").fetchone()
            self._last = _Segments(self._db) if has_segments else _Rows(self._db)
        self._state_count = self._last.count
        self._matched = 0
        # While in order: keys of the last run passed over by this one, i.e. deleted.
        self._gone = array("q")
        # In rows: stored keys inside a range-scanned batch's key range but not in it, the
        # deletes when reads come roughly in key order (dropped if a later batch has them).
        self._candidates: set[Any] | None = set()
        # Keys seen this run, to find deletes: plain ints in memory (8 bytes each), others
        # in a table of the store, so memory does not grow with the table either way.
        self._seen_ints = array("q")
        self._db.execute("DROP TABLE IF EXISTS seen")
        self._db.execute("CREATE TABLE seen (k PRIMARY KEY) WITHOUT ROWID")
        # This run's segments, while it reads in order; they replace the last run's at commit.
        self._db.execute("DROP TABLE IF EXISTS segment_next")
        self._db.execute(_SEGMENT_TABLE.format(name="segment_next"))
        self._in_order = True
        self._last_key: int | None = None

    def is_empty(self) -> bool:
        return (
            self._db.execute("SELECT 1 FROM state LIMIT 1").fetchone() is None
            and self._db.execute("SELECT 1 FROM segment LIMIT 1").fetchone() is None
        )

    def unchanged(self, first: Any, last: Any, count: int, digest: int) -> bool:
        """Whether a batch is the next segment of the last run as it was (same first and last
        key, row count and digest), told from its ends before its keys are gathered: equal
        rows have equal keys, ascending and disjoint from the run so far as they were then.
        The segment is carried over and the run goes on past it; False: compare the batch
        with `changed`, as if this had not been asked."""
        segments = self._last
        if (
            not self._in_order
            or self.resend
            or not isinstance(segments, _Segments)
            or type(first) is not int
            or (self._last_key is not None and first <= self._last_key)
            or not segments.next_is((first, last, count, digest))
        ):
            return False
        self._db.execute(
            "INSERT INTO segment_next SELECT * FROM segment WHERE lo = ?", (segments.skip(),)
        )
        self._matched += count
        self._last_key = last
        return True

    def changed(
        self,
        keys: Sequence[Any],
        hashes: Sequence[int] | Callable[[], Sequence[int]],
        digest: int | None = None,
    ) -> list[int]:
        """Positions of rows that are new or differ from the last run; records their hashes.

        `hashes` may be a function computing them: with the batch `digest`, a batch equal byte
        for byte to a batch of the last run (same first and last key, same rows) is known to
        be unchanged without hashing its rows or reading its stored hashes.
        """
        if not keys:
            return []
        in_order = self._in_order
        if in_order and self.full and self._merged_into_last(keys, hashes):
            return list(range(len(keys)))
        order = self._note_order(keys) if in_order else None
        if order is not None:
            if order:  # sorted within the batch: the segment keeps its keys in order
                if callable(hashes):
                    hashes = hashes()
                keys = [keys[i] for i in order]
                hashes = [hashes[i] for i in order]
            changed = self._changed_in_order(keys, hashes, None if self.resend else digest)
            if order:
                changed = sorted(order[i] for i in changed)
        else:
            if in_order:  # until this batch
                self._to_rows()
            if callable(hashes):
                hashes = hashes()
            changed = self._changed_by_row(keys, hashes)
        # Another scheme's hashes never equal this one's except by chance: all rows go.
        return list(range(len(keys))) if self.resend else changed

    def _note_order(self, keys: Sequence[Any]) -> list[int] | None:
        """Whether the run so far, this batch included, came in int keys (within SQLite's
        64-bit range) in batches of increasing, disjoint key ranges: only then was no key of
        this batch in an earlier one. None when not; else the positions that sort the batch
        (empty when it is sorted already). A heap read in PostgreSQL comes in key order up to
        a few misplaced pages (seen at 1,000,000 rows): sorting inside the batch keeps such a
        run in segments.
        """
        order: list[int] = []
        ordered = keys
        if not _ascending(keys):
            if not keys or set(map(type, keys)) != {int}:
                self._in_order = False
                return None
            order = sorted(range(len(keys)), key=keys.__getitem__)
            ordered = [keys[i] for i in order]
            if not _ascending(ordered):  # a key repeated in the batch
                self._in_order = False
                return None
        if (
            (self._last_key is not None and ordered[0] <= self._last_key)
            or ordered[0] not in _INT64
            or ordered[-1] not in _INT64
        ):
            self._in_order = False
            return None
        self._last_key = ordered[-1]
        return order

    def _merged_into_last(
        self, keys: Sequence[Any], hashes: Sequence[int] | Callable[[], Sequence[int]]
    ) -> bool:
        """A full run (nothing to compare with) whose batch reaches back into the one before
        it: the two become one segment, kept while it is at most `MERGED_BATCHES` batches.
        A heap read of 5,000,000 rows in PostgreSQL had two such pages at batch boundaries,
        and each sent the rest of the run (and the next run's comparison) to one row per key.
        """
        if self._last_key is None or set(map(type, keys)) != {int} or min(keys) > self._last_key:
            return False
        found = self._db.execute(
            "SELECT lo, hi, n, keys, hashes FROM segment_next ORDER BY lo DESC LIMIT 2"
        ).fetchall()
        if not found or found[0][2] + len(keys) > MERGED_BATCHES * len(keys):
            return False
        lo, _, _, keys_blob, hashes_blob = found[0]
        if callable(hashes):
            hashes = hashes()
        pairs = sorted(zip([*_ints(keys_blob), *keys], [*_ints(hashes_blob), *hashes], strict=True))
        merged_keys = [k for k, _ in pairs]
        if (
            not _ascending(merged_keys)  # a key twice
            or (len(found) > 1 and merged_keys[0] <= found[1][1])
            or merged_keys[0] not in _INT64
            or merged_keys[-1] not in _INT64
        ):
            return False
        self._db.execute("DELETE FROM segment_next WHERE lo = ?", (lo,))
        self._db.execute(
            "INSERT INTO segment_next (lo, hi, n, digest, keys, hashes) VALUES (?, ?, ?, ?, ?, ?)",
            (
                merged_keys[0],
                merged_keys[-1],
                len(merged_keys),
                None,  # no batch of a later run has this digest: compared pair by pair
                array("q", merged_keys).tobytes(),
                array("q", [h for _, h in pairs]).tobytes(),
            ),
        )
        self._last_key = merged_keys[-1]
        return True

    def _changed_in_order(
        self,
        keys: Sequence[int],
        hashes: Sequence[int] | Callable[[], Sequence[int]],
        digest: int | None,
    ) -> list[int]:
        last = self._last
        assert last is not None
        # Keys of the last run below this batch were passed over: deleted.
        self._gone.extend(last.take(keys[0])[0])
        header: SegmentHeader = (keys[0], keys[-1], len(keys), digest)
        if digest is not None and last.next_is(header):
            assert isinstance(last, _Segments)
            self._db.execute(
                "INSERT INTO segment_next SELECT * FROM segment WHERE lo = ?", (last.skip(),)
            )
            self._matched += len(keys)
            return []
        before_keys, before_hashes = last.take(keys[-1] + 1)
        if callable(hashes):
            hashes = hashes()
        if not before_keys:  # all new (or a full run)
            changed = list(range(len(keys)))
        elif before_keys == keys:  # no insert or delete in this range: compare pairwise in C
            self._matched += len(keys)
            changed = [] if before_hashes == hashes else _differing(before_hashes, hashes)
        else:
            # Keys gained or lost in this range; the positions and the keys passed over are
            # found by C loops (map, compress, set difference), not a Python loop per row.
            previous = dict(zip(before_keys, before_hashes, strict=True))
            changed = _differing(list(map(previous.get, keys)), hashes)
            gone = previous.keys() - keys
            self._matched += len(previous) - len(gone)
            self._gone.extend(sorted(gone))
        self._db.execute(
            "INSERT INTO segment_next (lo, hi, n, digest, keys, hashes) VALUES (?, ?, ?, ?, ?, ?)",
            (*header, array("q", keys).tobytes(), array("q", hashes).tobytes()),
        )
        return changed

    def _to_rows(self) -> None:
        """This run is not in key order after all: carry on with one `state` row per key.

        `state` becomes the last run's pairs updated with this run's so far, as if the run
        had been in rows from its start.
        """
        upsert = "INSERT OR REPLACE INTO state (k, h) VALUES (?, ?)"
        if isinstance(self._last, _Segments):
            for keys, hashes in self._last.pairs():
                self._db.executemany(upsert, zip(keys, hashes, strict=True))
        seen_before = len(self._seen_ints)
        for keys_blob, hashes_blob in self._db.execute("SELECT keys, hashes FROM segment_next"):
            self._db.executemany(upsert, zip(_ints(keys_blob), _ints(hashes_blob), strict=True))
            self._seen_ints.frombytes(keys_blob)  # the keys this run has seen so far
        self._db.execute("DELETE FROM segment_next")
        gone = self._gone.tolist()
        self._candidates = set(gone) if len(gone) <= MAX_CANDIDATES else None
        if len(self._seen_ints) > seen_before:
            # A range scan of a later batch may span keys this run saw while in order (a batch
            # overlapping the one before it) and would take them for deletes: only the exact
            # anti-join of `deleted` tells.
            self._candidates = None
        self._gone = array("q")
        self._last = None

    def _changed_by_row(self, keys: Sequence[Any], hashes: Sequence[int]) -> list[int]:
        upsert = "INSERT OR REPLACE INTO state (k, h) VALUES (?, ?)"
        if self.full:
            self._db.executemany(upsert, zip(keys, hashes, strict=True))
            return list(range(len(keys)))
        ints = set(map(type, keys)) == {int}
        stored = self._range(keys) if ints else None
        aligned = self._aligned(keys, hashes, stored) if stored is not None else None
        if aligned is not None:
            self._matched += len(keys)
            self._seen_ints.extend(keys)
            if self._candidates:
                self._candidates.difference_update(keys)
            self._db.executemany(upsert, ((keys[i], hashes[i]) for i in aligned))
            return aligned
        previous = self._lookup(keys, ints, stored)
        self._matched += len(previous)
        if self._candidates:
            self._candidates.difference_update(previous)
        if ints:
            self._seen_ints.extend(keys)
        else:
            self._db.executemany("INSERT OR IGNORE INTO seen (k) VALUES (?)", ((k,) for k in keys))
        get = previous.get
        positions = [
            i
            for i, (key, digest) in enumerate(zip(keys, hashes, strict=True))
            if get(key) != digest
        ]
        self._db.executemany(upsert, ((keys[i], hashes[i]) for i in positions))
        return positions

    def _range(self, keys: Sequence[int]) -> list[tuple[int, int]] | None:
        """Stored (key, hash) pairs of the batch's key range, in key order, when its keys
        come (roughly) in order: one range scan beats thousands of seeks."""
        low, high = min(keys), max(keys)
        if high - low >= 4 * len(keys):
            return None
        return self._db.execute(
            "SELECT k, h FROM state WHERE k BETWEEN ? AND ? ORDER BY k", (low, high)
        ).fetchall()

    def _aligned(
        self, keys: Sequence[int], hashes: Sequence[int], stored: list[tuple[int, int]]
    ) -> list[int] | None:
        """Changed positions when the batch holds exactly the stored keys of its key range,
        in order (an ordered read with no insert or delete there: the common case); else None.
        """
        if len(stored) != len(keys):
            return None
        if stored == list(zip(keys, hashes, strict=True)):
            return []  # same keys, same hashes: compared pairwise in C
        stored_keys, stored_hashes = zip(*stored, strict=True)
        if list(stored_keys) != list(keys):
            return None
        pairs = zip(stored_hashes, hashes, strict=True)
        return [i for i, (before, now) in enumerate(pairs) if before != now]

    def _lookup(
        self, keys: Sequence[Any], ints: bool, stored: list[tuple[int, int]] | None = None
    ) -> dict[Any, int]:
        previous: dict[Any, int] = {}
        if ints and stored is not None:
            # The range scan of `_range`: keys read in (roughly) key order.
            scanned = dict(stored)
            missing = scanned.keys() - set(keys)
            for k in missing:
                del scanned[k]
            self._track_candidates(missing)
            return scanned
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start : start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            previous.update(
                self._db.execute(f"SELECT k, h FROM state WHERE k IN ({marks})", chunk).fetchall()
            )
        return previous

    def _track_candidates(self, missing: set[Any]) -> None:
        if self._candidates is None or not missing:
            return
        self._candidates.update(missing)
        if len(self._candidates) > MAX_CANDIDATES:
            self._candidates = None  # reads are not in key order: use the exact anti-join

    def deleted(self, batch_size: int) -> Iterator[list[Any]]:
        """Stored keys of the last run that this run did not see, in batches.

        Every stored key found again means nothing was deleted (UpsertColumns identify rows
        uniquely), which spares the search on the common path.
        """
        if self.full or self._matched >= self._state_count:
            return
        if self._in_order:
            yield from self._deleted_in_order(batch_size)
            return
        candidates = self._candidates
        if candidates is not None and self._matched + len(candidates) == self._state_count:
            # Every stored key was either read again or is a candidate: those are the deletes.
            gone = sorted(candidates)
            for start in range(0, len(gone), batch_size):
                yield gone[start : start + batch_size]
            for start in range(0, len(gone), LOOKUP_CHUNK):
                chunk = gone[start : start + LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM state WHERE k IN ({marks})", chunk)
            return
        if self._seen_ints:
            self._db.executemany(
                "INSERT OR IGNORE INTO seen (k) VALUES (?)", ((k,) for k in self._seen_ints)
            )
            self._seen_ints = array("q")
        cursor = self._db.execute(
            "SELECT s.k FROM state s WHERE NOT EXISTS (SELECT 1 FROM seen n WHERE n.k = s.k)"
        )
        while rows := cursor.fetchmany(batch_size):
            yield [row[0] for row in rows]
        self._db.execute(
            "DELETE FROM state WHERE NOT EXISTS (SELECT 1 FROM seen n WHERE n.k = state.k)"
        )

    def _deleted_in_order(self, batch_size: int) -> Iterator[list[Any]]:
        """The keys passed over, then those past this run's last key (commit drops them all)."""
        gone = self._gone
        for start in range(0, len(gone), batch_size):
            yield gone[start : start + batch_size].tolist()
        assert self._last is not None
        for rest in self._last.rest():
            for start in range(0, len(rest), batch_size):
                yield rest[start : start + batch_size]

    def commit(self) -> None:
        """Make this run the one the next run compares with."""
        self._db.execute("DROP TABLE IF EXISTS seen")
        if self._in_order:
            # A rename, not a copy: copying the arrays would hold them in a statement journal.
            self._db.execute("DELETE FROM state")
            self._db.execute("DROP TABLE segment")
            self._db.execute("ALTER TABLE segment_next RENAME TO segment")
        else:
            self._db.execute("DELETE FROM segment")
            self._db.execute("DROP TABLE IF EXISTS segment_next")
        self._db.execute("COMMIT")
        self._started = False

    def rollback(self) -> None:
        if self._started:
            self._db.execute("ROLLBACK")
            self._started = False

    # -- pointers ----------------------------------------------------------------------------
    def get_meta(self, name: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else loads(row[0])

    def set_meta(self, name: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, dumps(value))
        )

    def reset(self) -> None:
        """Forget everything (a resync of a timestamp job)."""
        self._db.execute("DELETE FROM state")
        self._db.execute("DELETE FROM segment")
        self._db.execute("DELETE FROM meta")

    def close(self) -> None:
        self._db.close()

"""The per-job stage store: what the previous run sent, for synthetic change detection.

One SQLite file per job under DATA_DIR/stage/. `state` holds (key, row hash) of the last
committed run; a run fills `next` beside it and `commit()` swaps them in one transaction, so
the store only advances once the change log is durable. `meta` keeps typed pointers.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import operator
import pickle
import sqlite3
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import xxhash

from jobs.changelog import dumps, loads

_dumps = pickle.dumps
_crc32 = zlib.crc32
_adler32 = zlib.adler32
_xxh64 = xxhash.xxh3_64_intdigest
_SIGN = 1 << 63  # shifted into SQLite's signed 64-bit INTEGER range

MAX_CANDIDATES = 200_000

# SQLite's default variable limit is 32766; stay well below it per lookup.
LOOKUP_CHUNK = 5000


def row_hash(row: tuple) -> int:
    """A stable 64-bit digest of a row's values and their types (pickle is deterministic).

    CRC-32 and Adler-32 side by side: two independent checksums computed in C, several times
    cheaper per row than a cryptographic hash; a change has to fool both to go unnoticed.
    """
    data = _dumps(row, 5)
    return (_crc32(data) << 32 | _adler32(data)) - _SIGN


def hashes_of(pickled: bytes, ends: Sequence[int]) -> list[int]:
    """Row hashes (as in `row_hash`) of rows pickled back to back (jobs.changelog.pickle_rows).

    The full strategy hashes rows as the change log stores them (decimals, dates and
    timestamps as text, see jobs.changelog.encode_frame), reusing the same bytes.
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
    """A 64-bit digest of a whole batch as pickled by jobs.changelog.pickle_rows (every row's
    bytes back to back, keys included): two C calls over one buffer, however many rows."""
    return (_crc32(pickled) << 32 | _adler32(pickled)) - _SIGN


def _ascending(keys: Sequence[Any]) -> bool:
    """Plain ints, strictly increasing (so also without duplicates); compared in C."""
    return (
        bool(keys)
        and set(map(type, keys)) == {int}
        and all(map(operator.lt, keys, islice(keys, 1, None)))
    )


def batch_keys(rows: Sequence[tuple], positions: Sequence[int]) -> list[Any]:
    """Store identities of the rows' keys; plain ints and texts as they are (the common case)."""
    if len(positions) == 1:
        p = positions[0]
        keys = [row[p] for row in rows]
        kinds = set(map(type, keys))
        if kinds == {int} or (kinds == {str} and not any(k.startswith("[[") for k in keys)):
            return keys
        return [encode_key((k,)) for k in keys]
    return [encode_key(tuple(row[p] for p in positions)) for row in rows]


def encode_key(values: tuple) -> Any:
    """The identity of a row's key in the store: the value itself for one int or text column."""
    if len(values) == 1:
        value = values[0]
        # Text that starts like the tagged form is tagged too, so decoding is unambiguous.
        if type(value) is int or (type(value) is str and not value.startswith("[[")):
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


class StageStore:
    """Key → hash of the last committed run of one job."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MB page cache, bounded
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS state (k PRIMARY KEY, h INTEGER) WITHOUT ROWID"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB)")
        self._db.execute("CREATE TABLE IF NOT EXISTS boundary (k PRIMARY KEY) WITHOUT ROWID")
        # One row per batch of the last run when its keys were plain ints read in strictly
        # increasing order across the whole run: first key, last key, rows, batch digest.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS segment "
            "(lo INTEGER PRIMARY KEY, hi INTEGER, n INTEGER, h INTEGER)"
        )
        self._started = False
        self.full = False
        self.hash_name = HASH_XXH3

    def row_hashes(self, pickled: bytes, ends: Sequence[int]) -> list[int]:
        """The hashes of pickled rows (jobs.changelog.pickle_rows) as this store keeps them."""
        if self.hash_name == HASH_XXH3:
            return xxh3_hashes_of(pickled, ends)
        return hashes_of(pickled, ends)

    # -- a run ------------------------------------------------------------------------------
    # A run works inside one SQLite transaction: changed hashes are written into `state` as
    # they are found and only COMMIT makes them count, once the change log is durable.
    def begin(self, *, full: bool) -> None:
        """Start a run; `full` ignores the previous state (first run, resync, Initialize)."""
        self._db.execute("BEGIN IMMEDIATE")
        self._started = True
        self.full = full or self.is_empty()
        if self.full:
            self._db.execute("DELETE FROM state")
            self.set_meta("row_hash", HASH_XXH3)
            self.hash_name = HASH_XXH3
        else:
            self.hash_name = self.get_meta("row_hash") or HASH_CRC_ADLER
        self._state_count = 0 if self.full else self._count("state")
        self._matched = 0
        # Stored keys inside a range-scanned batch's key range but not in it: the deletes,
        # when reads come in key order (they are dropped again if a later batch has them).
        self._candidates: set[Any] | None = set()
        # Keys seen this run, to find deletes: plain ints in memory (8 bytes each), others
        # in a table of the store, so memory does not grow with the table either way.
        self._seen_ints = array("q")
        self._db.execute("DROP TABLE IF EXISTS seen")
        self._db.execute("CREATE TABLE seen (k PRIMARY KEY) WITHOUT ROWID")
        # This run's batch segments (see `changed`); they replace the last run's at commit,
        # and only if every batch of the run came in strictly increasing int key order.
        self._db.execute("DROP TABLE IF EXISTS segment_next")
        self._db.execute(
            "CREATE TABLE segment_next (lo INTEGER PRIMARY KEY, hi INTEGER, n INTEGER, h INTEGER)"
        )
        self._in_order = True
        self._last_key: int | None = None

    def _count(self, table: str) -> int:
        return int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def is_empty(self) -> bool:
        return self._db.execute("SELECT 1 FROM state LIMIT 1").fetchone() is None

    def changed(
        self,
        keys: Sequence[Any],
        hashes: Sequence[int] | Callable[[], Sequence[int]],
        digest: int | None = None,
    ) -> list[int]:
        """Positions of rows that are new or differ from the last run; records their hashes.

        `hashes` may be a function computing them: with the batch `digest`, a batch equal byte
        for byte to one of the last run (same first and last key, same rows) is known to be
        unchanged without hashing its rows or reading the store's rows for it.
        """
        upsert = "INSERT OR REPLACE INTO state (k, h) VALUES (?, ?)"
        in_order = self._note_order(keys)
        if in_order and digest is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO segment_next (lo, hi, n, h) VALUES (?, ?, ?, ?)",
                (keys[0], keys[-1], len(keys), digest),
            )
            if not self.full and self._same_segment(keys, digest):
                self._matched += len(keys)
                self._seen_ints.extend(keys)
                if self._candidates:
                    self._candidates.difference_update(keys)
                return []
        if callable(hashes):
            hashes = hashes()
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

    def _note_order(self, keys: Sequence[Any]) -> bool:
        """Whether the run so far, this batch included, came in strictly increasing int keys.

        Only then can no earlier batch of this run have touched this batch's keys, and only
        then are this run's segments kept (see `commit`).
        """
        if not self._in_order or not keys:
            return False
        if not _ascending(keys) or (self._last_key is not None and keys[0] <= self._last_key):
            self._in_order = False
            return False
        self._last_key = keys[-1]
        return True

    def _same_segment(self, keys: Sequence[int], digest: int) -> bool:
        """The last run had a batch with exactly these rows: its hashes are in the store.

        That run read its keys in strictly increasing order (segments are kept only then),
        so each of these keys was in that batch only and its stored hash is that row's.
        """
        found = self._db.execute("SELECT hi, n, h FROM segment WHERE lo = ?", (keys[0],)).fetchone()
        return found is not None and tuple(found) == (keys[-1], len(keys), digest)

    def _range(self, keys: Sequence[int]) -> list[tuple[int, int]] | None:
        """Stored (key, hash) pairs of the batch's key range, in key order, when its keys
        come (roughly) in order: one range scan beats thousands of seeks."""
        if not keys:
            return None
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
        if not keys:
            return previous
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
        """Stored keys of the last run that this run did not see, in batches; drops them.

        Every stored key found again means nothing was deleted (UpsertColumns identify rows
        uniquely), which spares the anti-join on the common path.
        """
        if self.full or self._matched >= self._state_count:
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

    def commit(self) -> None:
        """Make this run the one the next run compares with."""
        self._db.execute("DROP TABLE IF EXISTS seen")
        self._db.execute("DELETE FROM segment")
        if self._in_order:
            self._db.execute("INSERT INTO segment SELECT * FROM segment_next")
        self._db.execute("DROP TABLE IF EXISTS segment_next")
        self._db.execute("COMMIT")
        self._started = False

    def rollback(self) -> None:
        if self._started:
            self._db.execute("ROLLBACK")
            self._started = False

    # -- pointers and the timestamp boundary -------------------------------------------------
    def get_meta(self, name: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else loads(row[0])

    def set_meta(self, name: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, dumps(value))
        )

    def boundary_contains(self, keys: Sequence[Any]) -> set[Any]:
        found: set[Any] = set()
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start : start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self._db.execute(f"SELECT k FROM boundary WHERE k IN ({marks})", chunk)
            )
        return found

    def replace_boundary(self, keys: Sequence[Any], *, keep_existing: bool) -> None:
        """The rows sent at the pointer's exact timestamp (kept across runs while it holds)."""
        if not keep_existing:
            self._db.execute("DELETE FROM boundary")
        self._db.executemany("INSERT OR IGNORE INTO boundary (k) VALUES (?)", ((k,) for k in keys))

    def reset(self) -> None:
        """Forget everything (a resync of a timestamp job)."""
        self._db.execute("DELETE FROM state")
        self._db.execute("DELETE FROM boundary")
        self._db.execute("DELETE FROM meta")

    def close(self) -> None:
        self._db.close()

"""The stage store against a plain dict model, over runs in and out of key order."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from jobs.sync.stage import StageStore


def _run(
    store: StageStore,
    rows: dict[Any, int],
    order: list[Any],
    batch: int,
    *,
    full: bool = False,
    ends_first: bool = False,
) -> tuple[set[Any], set[Any]]:
    """One run: the keys reported changed and the keys reported deleted. `ends_first`: each
    batch is first offered by its first and last key (`unchanged`), as the engine does."""
    store.begin(full=full)
    changed: set[Any] = set()
    for start in range(0, len(order), batch):
        keys = order[start : start + batch]
        hashes = [rows[k] for k in keys]
        digest = hash((tuple(keys), tuple(hashes)))
        if ends_first and store.unchanged(keys[0], keys[-1], len(keys), digest):
            continue
        changed.update(keys[i] for i in store.changed(keys, hashes, digest))
    deleted = {k for chunk in store.deleted(batch) for k in chunk}
    return changed, deleted


def _next_rows(rng: random.Random, rows: dict[Any, int], top: int) -> dict[Any, int]:
    after = dict(rows)
    for key in rng.sample(sorted(after), k=min(len(after), rng.randrange(0, 40))):
        del after[key]
    for key in rng.sample(sorted(after), k=min(len(after), rng.randrange(0, 40))):
        after[key] += 1
    for _ in range(rng.randrange(0, 40)):
        after[rng.randrange(-top, 2 * top)] = rng.randrange(1 << 40)
    return after


@pytest.mark.parametrize("ends_first", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_changes_and_deletes_match_a_model_in_and_out_of_key_order(
    tmp_path: Path, seed: int, ends_first: bool
) -> None:
    rng = random.Random(seed)
    store = StageStore(tmp_path / "stage.sqlite3")
    top = 2_000
    rows = {k: rng.randrange(1 << 40) for k in rng.sample(range(top), 1_500)}
    committed: dict[Any, int] = {}
    batch = 50
    try:
        for step in range(14):
            # given: a run in key order, out of order, or in order that breaks halfway
            order = sorted(rows)
            kind = rng.choice(
                ["ordered", "ordered", "shuffled", "breaks", "descending", "misplaced"]
            )
            if kind == "shuffled":
                rng.shuffle(order)
            elif kind == "misplaced":  # a heap read: in order up to a few misplaced pages
                window = rng.choice([5, 60, 400])
                for start in range(0, len(order), window):
                    part = order[start : start + window]
                    rng.shuffle(part)
                    order[start : start + window] = part
            elif kind == "descending":
                order.reverse()
            elif kind == "breaks":
                cut = rng.randrange(len(order))
                order = order[:cut] + list(reversed(order[cut:]))
            if not ends_first or rng.random() < 0.5:
                batch = rng.choice([7, 50, 333, 1_000])
            # (else: the last step's batch size, so that batches can equal the last run's)
            full = rng.random() < 0.15  # resync: everything is sent, nothing deleted
            # when
            changed, deleted = _run(store, rows, order, batch, full=full, ends_first=ends_first)
            # then: exactly what differs from the last committed run
            expected = set(rows) if full else {k for k, h in rows.items() if committed.get(k) != h}
            assert changed == expected, (step, kind)
            assert deleted == (set() if full else set(committed) - set(rows)), (step, kind)
            if rng.random() < 0.2:
                store.rollback()  # a failed run: the next one compares with the same state
            else:
                store.commit()
                committed = dict(rows)
                if ends_first and rng.random() < 0.3:  # updates only: no batch boundary moves
                    rows = {k: h + (rng.random() < 0.002) for k, h in rows.items()}
                else:
                    rows = _next_rows(rng, rows, top)
    finally:
        store.close()


def test_a_batch_equal_to_the_next_segment_is_carried_over_from_its_ends(
    tmp_path: Path,
) -> None:
    store = StageStore(tmp_path / "stage.sqlite3")
    rows = {k: k * 3 for k in range(100)}
    asked: list[bool] = []
    unchanged = store.unchanged

    def counted(first: Any, last: Any, count: int, digest: int) -> bool:
        asked.append(unchanged(first, last, count, digest))
        return asked[-1]

    store.unchanged = counted  # type: ignore[method-assign]
    try:
        _run(store, rows, sorted(rows), 10, ends_first=True)
        store.commit()
        # given: one update, one delete, one insert past the end
        rows[35] += 1
        del rows[72]
        rows[150] = 1
        # when
        changed, deleted = _run(store, rows, sorted(rows), 10, ends_first=True)
        # then: the batches before the update and between it and the delete are carried over;
        # the delete moves the later batches' ends, which are compared key by key
        assert (changed, deleted) == ({35, 150}, {72})
        assert asked[10:] == [True, True, True, False, True, True, True, False, False, False]
        store.commit()
        assert _run(store, rows, sorted(rows), 10, ends_first=True) == (set(), set())
        assert asked[20:] == [True] * 10
        store.rollback()
        # and: a batch reaching back into the run so far, or a resend, is left to `changed`
        store.begin(full=False)
        assert store.unchanged(0, 9, 10, hash((tuple(range(10)), tuple(range(0, 30, 3)))))
        assert not store.unchanged(0, 9, 10, hash((tuple(range(10)), tuple(range(0, 30, 3)))))
        store.rollback()
        store.begin(full=False, hash_name="another")
        assert store.resend
        assert not store.unchanged(0, 9, 10, hash((tuple(range(10)), tuple(range(0, 30, 3)))))
        store.rollback()
    finally:
        store.close()


def test_text_keys_then_int_keys_in_order_delete_every_text_key(tmp_path: Path) -> None:
    store = StageStore(tmp_path / "stage.sqlite3")
    try:
        # given: a run keyed by text (kept in rows)
        _run(store, {"a": 1, "b": 2}, ["a", "b"], 10)
        store.commit()
        # when: the keys become ints read in order
        changed, deleted = _run(store, {1: 1, 2: 2}, [1, 2], 10)
        store.commit()
        # then: the ints are new and every text key is deleted
        assert (changed, deleted) == ({1, 2}, {"a", "b"})
        assert _run(store, {1: 1, 2: 2}, [1, 2], 10) == (set(), set())
        store.rollback()
    finally:
        store.close()


def test_keys_beyond_64_bits_are_compared_by_row(tmp_path: Path) -> None:
    from jobs.sync.stage import batch_keys, decode_key

    # MySQL BIGINT UNSIGNED reaches 2**64 - 1, past SQLite's signed 64-bit integers
    big = batch_keys([(1,), (2**63,), (2**64 - 1,)], [0])
    store = StageStore(tmp_path / "stage.sqlite3")
    try:
        _run(store, dict.fromkeys(big, 5), big, 10)
        store.commit()
        changed, deleted = _run(store, {big[0]: 5, big[1]: 6}, big[:2], 10)
        assert (changed, deleted) == ({big[1]}, {big[2]})
        assert decode_key(big[2], 1) == (2**64 - 1,)
        store.rollback()
    finally:
        store.close()


def test_an_ordered_run_keeps_a_few_segment_rows_instead_of_a_row_per_key(
    tmp_path: Path,
) -> None:
    store = StageStore(tmp_path / "stage.sqlite3")
    rows = {k: k * 7 for k in range(10_000)}
    try:
        _run(store, rows, sorted(rows), 1_000)
        store.commit()
        counts = [
            store._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("segment", "state")
        ]
        assert counts == [10, 0]
        # keys out of order inside each batch only (a heap read) keep the segments
        shuffled = sorted(rows)
        for start in range(0, len(shuffled), 1_000):
            part = shuffled[start : start + 1_000]
            random.Random(start).shuffle(part)
            shuffled[start : start + 1_000] = part
        rows[5] = 0
        changed, deleted = _run(store, rows, shuffled, 1_000)
        store.commit()
        assert (changed, deleted) == ({5}, set())
        counts = [
            store._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("segment", "state")
        ]
        assert counts == [10, 0]
        # a run out of order moves the store to one row per key
        _run(store, rows, sorted(rows, reverse=True), 1_000)
        store.commit()
        counts = [
            store._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("segment", "state")
        ]
        assert counts == [0, 10_000]
    finally:
        store.close()


def test_a_first_load_reaching_back_into_the_batch_before_keeps_segments(
    tmp_path: Path,
) -> None:
    # given: a heap read where a page of keys lands one batch late (batches of 1,000)
    store = StageStore(tmp_path / "stage.sqlite3")
    rows = {k: k * 7 for k in range(10_000)}
    order = sorted(rows)
    order.remove(1_990)
    order.insert(2_500, 1_990)
    try:
        # when
        changed, deleted = _run(store, rows, order, 1_000, full=True)
        store.commit()
        # then: every row sent, the two batches kept as one segment, none as a row per key
        assert changed == set(rows) and deleted == set()
        counts = [
            store._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("segment", "state")
        ]
        assert counts == [9, 0]
        # and the next run, in key order, compares with it
        rows[1_990] = 1
        del rows[1_991]
        changed, deleted = _run(store, rows, sorted(rows), 1_000)
        assert (changed, deleted) == ({1_990}, {1_991})
    finally:
        store.close()


def test_a_store_of_the_earlier_segment_layout_is_read_from_its_rows(tmp_path: Path) -> None:
    import sqlite3

    # given: a store written before segments kept their keys and hashes
    path = tmp_path / "stage.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE state (k PRIMARY KEY, h INTEGER) WITHOUT ROWID")
    db.execute("CREATE TABLE segment (lo INTEGER PRIMARY KEY, hi INTEGER, n INTEGER, h INTEGER)")
    db.executemany("INSERT INTO state VALUES (?, ?)", [(1, 10), (2, 20), (3, 30)])
    db.execute("INSERT INTO segment VALUES (1, 3, 3, 99)")
    db.commit()
    db.close()
    store = StageStore(path)
    try:
        # when / then: its rows are the last run
        assert _run(store, {1: 10, 3: 31}, [1, 3], 10) == ({3}, {2})
        store.commit()
        assert _run(store, {1: 10, 3: 31}, [1, 3], 10) == (set(), set())
        store.rollback()
    finally:
        store.close()


def _sqlite_memory() -> int:
    """Bytes SQLite holds in this process (every connection), from the library itself."""
    import _sqlite3
    import ctypes

    used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    used.restype = ctypes.c_int64
    return int(used())


def test_a_first_load_holds_a_bounded_share_of_its_writes_in_memory(tmp_path: Path) -> None:
    # given: a first load writing 2,000,000 keys and hashes (32 MB of segments) in one run,
    # and the store's share of the 300 MB a run may take (issue 20): 20 MB
    store = StageStore(tmp_path / "stage.sqlite3")
    before = _sqlite_memory()
    store.begin(full=True)
    # when
    for start in range(1, 2_000_001, 10_000):
        keys = list(range(start, start + 10_000))
        store.changed(keys, keys, None)
        # then
        assert _sqlite_memory() - before < 20 * 1024 * 1024
    store.commit()
    store.close()


def test_a_run_spilled_past_the_page_cache_is_the_one_the_next_run_compares_with(
    tmp_path: Path,
) -> None:
    # given a first load of 2,000,000 keys in order (32 MB of segments, more than the page
    # cache holds: SQLite spills them to the WAL file inside the run's transaction)
    store = StageStore(tmp_path / "stage.sqlite3")
    batch, batches = 10_000, 200
    try:
        store.begin(full=True)
        for start in range(0, batch * batches, batch):
            keys = list(range(start, start + batch))
            store.changed(keys, [k * 3 for k in keys], None)
        store.commit()
        # when the next run sees one row changed
        store.begin(full=False)
        changed = []
        for start in range(0, batch * batches, batch):
            keys = list(range(start, start + batch))
            hashes = [k * 3 + (k == 1_234_567) for k in keys]
            changed += [keys[i] for i in store.changed(keys, hashes, None)]
        # then it finds that row and nothing deleted: every spilled segment was committed
        assert changed == [1_234_567]
        assert list(store.deleted(batch)) == []
        store.commit()
    finally:
        store.close()


def test_the_rows_digest_tells_types_and_exact_values_apart() -> None:
    import math

    from jobs.sync.stage import rows_digest

    # given: rows that differ only in a value's type or its last bit
    variants: list[list[tuple]] = [
        [(1, None)],
        [(1, "")],
        [(1, 0)],
        [(1, 0.0)],
        [(1, -0.0)],
        [(1, False)],
        [(1, b"")],
        [(1, "0")],
        [(1, 0.1 + 0.2)],
        [(1, 0.3)],
        [(1, math.nextafter(0.3, 0))],
        [(1, 2**63)],
        [(1, None), (2, None)],
        [(1, None, None)],
    ]
    # then: each has its own digest
    digests = [rows_digest(rows) for rows in variants]
    assert len(set(digests)) == len(variants)
    # and: equal values give equal digests, whichever objects hold them (no memo)
    text = "x" * 20
    shared = [(1, text, text), (2, text, text)]
    separate = [(1, "x" * 20, "".join(["x"] * 20)), (2, "x" * 20, "x" * 20)]
    assert shared[0][1] is shared[0][2] and separate[0][1] is not separate[0][2]
    assert rows_digest(shared) == rows_digest(separate) == rows_digest(tuple(separate))

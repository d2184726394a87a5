"""The cyclic garbage collector's pace while a sync run moves rows.

A run allocates a tuple per row several times over (read, encoded, converted for the target),
in lists of 10,000. At CPython's default pace (a young-generation collection every 700 net
allocations) that was about 2,100 young and 190 middle collections per 1,000,000 rows, each
walking the young rows and the half-built list holding them: 0.65-0.7 s of CPU, 13 % of a
drive → SQLite first load (bench/drive.py, docs/decisions.md "Drive benchmark target"). Rows
are plain values, not cycles, so collecting rarely while rows move loses nothing; the
threshold goes back once no run in the process needs it (a message consumer's run lasts until
it is stopped, so a process running one keeps the raised threshold meanwhile).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000  # net allocations between young collections while a run moves rows

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, ...] = ()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the young generation every YOUNG_THRESHOLD allocations instead of 700 while
    the block runs; runs on several threads share the setting until the last one ends."""
    global _runs, _saved
    with _lock:
        if _runs == 0:
            _saved = gc.get_threshold()
            if _saved[0]:  # 0: collection disabled by the operator, leave it so
                gc.set_threshold(max(_saved[0], YOUNG_THRESHOLD), *_saved[1:])
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _saved:
                gc.set_threshold(*_saved)

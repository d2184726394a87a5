"""The garbage collector's pace during sync runs (jobs.sync.collect)."""

from __future__ import annotations

import gc
import threading

from jobs.sync.collect import YOUNG_THRESHOLD, fewer_collections


def test_runs_raise_the_young_threshold_until_the_last_one_ends() -> None:
    before = gc.get_threshold()
    entered = threading.Event()
    release = threading.Event()

    def other_run() -> None:
        with fewer_collections():
            entered.set()
            release.wait(5)

    with fewer_collections():
        assert gc.get_threshold() == (max(before[0], YOUNG_THRESHOLD), *before[1:])
        thread = threading.Thread(target=other_run)
        thread.start()
        assert entered.wait(5)
    # the first run ended, another still moves rows: the threshold stays raised
    assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
    release.set()
    thread.join()
    assert gc.get_threshold() == before


def test_an_exception_restores_the_threshold_and_disabled_collection_stays_so() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections():
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    gc.set_threshold(0)
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)

"""Dead-letter files: an append while a replay holds the file waits for it, and lands in the
file the replay leaves (not in the copy it replaced)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from jobs.systems import deadletters


def test_an_append_during_a_replay_lands_after_the_rewrite(tmp_path: Path) -> None:
    # given a file with one entry, held by a replay
    path = tmp_path / "x.messages.jsonl"
    deadletters.append(path, [{"n": 1}])
    appended = threading.Event()

    def run_appends() -> None:
        deadletters.append(path, [{"n": 2}])
        appended.set()

    with deadletters.locked(path):
        found = deadletters.entries(path)
        writer = threading.Thread(target=run_appends)
        writer.start()
        time.sleep(0.2)
        # when the run appends meanwhile, it waits
        assert not appended.is_set()
        deadletters.keep_only(path, [])  # the replay delivered entry 1
    writer.join(5)
    # then entry 2 is in the file the replay left
    assert found == [{"n": 1}]
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"n": 2}]

"""A direct job's writer applying frames on its own thread while the reader reads on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from jobs.sync.changelog import Frame, Header
from jobs.sync.stream import QUEUE_FRAMES, StreamingApply
from jobs.systems.base import ApplyHooks, ApplyResult
from jobs.systems.batch import Column


class _BusyWriter:
    """Holds the first frame it gets until told to go on."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.applied: list[list[tuple]] = []

    def applied_position(self) -> str:
        return ""

    def apply(
        self,
        header: Header,
        frames: Iterable[Frame],
        execution_id: str,
        hooks: ApplyHooks,
        *,
        recreate: bool = False,
    ) -> ApplyResult:
        for frame in frames:
            self.applied.append(frame.rows)
            assert self.go_on.wait(30)
        return ApplyResult(applied=True, upserts=len(self.applied))

    def run_script(self, script: str) -> None:
        raise NotImplementedError

    def streams_beside(self, reader: object) -> bool:
        return True


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_the_reader_runs_at_most_queue_frames_ahead_of_a_busy_writer() -> None:
    # given a streaming apply whose writer is busy with the first frame
    writer = _BusyWriter()
    stream = StreamingApply(writer, "42", transform=lambda batch: batch)
    stream.start(Header("r", "42", [Column("id", "integer")], ["id"]))
    frames = QUEUE_FRAMES + 3
    handed: list[int] = []

    def read() -> None:
        for n in range(frames):
            stream.feed(b"U", [(n,)])
            handed.append(n)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # when the reader has handed over what the writer took and a full queue more
    _wait_for(
        lambda: writer.applied and len(handed) >= 1 + QUEUE_FRAMES,
        "the reader filled the writer's queue",
    )
    # then it waits: a frame in the writer's hands and QUEUE_FRAMES queued are all a run
    # holds (each is a batch of rows in memory), however long the writer takes
    time.sleep(0.5)
    assert handed == list(range(1 + QUEUE_FRAMES))
    # and once the writer goes on, every frame is applied in order
    writer.go_on.set()
    reader.join(30)
    result = stream.finish(empty=False)
    assert writer.applied == [[(n,)] for n in range(frames)]
    assert result.upserts == frames

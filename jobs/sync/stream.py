"""Apply a direct job's changes on a thread while its reader is still producing them.

The writer's transaction commits only after the reader has made the change log durable and
moved its pointers (`finish`), so the outcome is the one of applying the finished file
afterwards; the rows are just written while the next batches are read, and never read back
from disk. Anything that stops the reader rolls the writer's transaction back (`abort`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from jobs.sync.changelog import Frame, Header
from jobs.systems.base import ApplyHooks, ApplyResult, Writer
from jobs.systems.batch import Batch

QUEUE_FRAMES = 3  # frames waiting for the writer: bounds the memory the overlap costs


class StreamAborted(Exception):
    """The reader did not complete: nothing of this run is applied."""


class _NothingToApply(Exception):
    pass


_END, _EMPTY, _ABORT = object(), object(), object()


class StreamingApply:
    """One change log applied from the reader's frames, on its own thread."""

    def __init__(
        self,
        writer: Writer,
        execution_id: str,
        *,
        transform: Callable[[Batch], Batch],
        recreate: bool = False,
        fence: str = "",
    ) -> None:
        self._writer = writer
        self._fence = fence
        self._execution_id = execution_id
        self._transform = transform
        self._recreate = recreate
        self._queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.messages: list[str] = []
        self.upserts = 0
        self.deletes = 0
        self.error: BaseException | None = None
        self.result: ApplyResult | None = None

    def start(self, header: Header) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(header,), name="direct-writer", daemon=True
        )
        self._thread.start()

    def feed(self, op: bytes, rows: list[tuple]) -> None:
        """Hand a frame over; once the writer has failed, frames only go to the change log."""
        self._send(Frame(op, rows))

    def finish(self, *, empty: bool) -> ApplyResult:
        """Commit (the change log is durable) and wait; raises what made the writer fail."""
        self._send(_EMPTY if empty else _END)
        self._join()
        if self.error is not None:
            raise self.error
        return self.result or ApplyResult(applied=False)

    def abort(self) -> None:
        self._stop.set()
        self._send(_ABORT)
        self._join()

    def _send(self, item: object) -> None:
        while self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _frames(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _EMPTY:
                raise _NothingToApply
            if item is _ABORT:
                raise StreamAborted("The reader did not complete; nothing was applied.")
            assert isinstance(item, Frame)
            yield item

    def _check(self) -> None:
        if self._stop.is_set():
            raise StreamAborted("The reader did not complete; nothing was applied.")

    def _progress(self, upserts: int, deletes: int) -> None:
        self.upserts, self.deletes = upserts, deletes

    def _run(self, header: Header) -> None:
        hooks = ApplyHooks(
            check_cancel=self._check,
            progress=self._progress,
            log=self.messages.append,
            transform=self._transform,
            fence=self._fence,
        )
        try:
            self.result = self._writer.apply(
                header, self._frames(), self._execution_id, hooks, recreate=self._recreate
            )
        except _NothingToApply:
            self.result = ApplyResult(applied=False)
        except BaseException as exc:  # handed to the reader's thread by finish()
            self.error = exc

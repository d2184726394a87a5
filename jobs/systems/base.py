"""The connector interface: what the data path asks of every kind of system.

A `System` opens `Reader`s (a connection + a reader spec → typed batches) and `Writer`s
(change-log frames → the target, idempotently). `jobs.systems.registry` finds the system of a
job's connection; the data path (`jobs.sync.run`) only ever talks to these interfaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from jobs.sync.changelog import Frame, Header
from jobs.sync.spec import ReaderSpec, WriterSpec
from jobs.systems.batch import Batch


class UnsupportedSystem(ValueError):
    """No connector for the system a definition names (or a feature it lacks)."""


@dataclass(frozen=True)
class Connection:
    """A job's `ConnectionString` resolved: a stored key's system and value, or inline text."""

    key: str | None
    system: str
    kind: str  # ConnectionType: DB, HTTP, Drive, Messaging, BigData
    value: str

    def describe(self) -> str:
        name = f"connection '{self.key}'" if self.key else "the inline connection string"
        return f"{name} ({self.kind}{', ' + self.system if self.system else ''})"


@dataclass(frozen=True)
class Since:
    """Read only rows whose `column` is at or past `value` (a high-water mark)."""

    column: str
    value: Any


@dataclass(frozen=True)
class Pushdown:
    """What a reader does inside the source system rather than in the gateway."""

    since: bool = False  # filters on a high-water mark (`Since`) before rows cross the wire
    # hashes rows in the source (the reader is also a `RowHashing`): a full-strategy run
    # reads keys and digests only, then the changed rows by key
    row_hash: bool = False


class RowHashing(Protocol):
    """What a reader with `pushdown.row_hash` offers change detection (jobs.sync.detect).

    Digests are 64-bit signed ints under a named scheme; the stage store keeps the name with
    them, so a store kept under another scheme is re-sent once rather than compared.
    """

    def hash_scheme(self) -> str:
        """The digests' scheme on this source ('' when it cannot hash after all)."""
        ...

    def hashed_batches(self, *, batch_size: int) -> Iterator[Batch]:
        """The source's rows as `batches` gives them, each batch with its rows' `hashes`."""
        ...

    def digests(self, *, keys: list[str], batch_size: int) -> Iterator[Batch]:
        """Key columns only, in key order, with every row's digest in `hashes`."""
        ...

    def rows_by_key(
        self, *, keys: list[str], values: list[tuple], batch_size: int
    ) -> Iterator[Batch]:
        """The rows whose `keys` columns hold one of `values` (no rows: one empty batch that
        still names the columns)."""
        ...


class Reader(Protocol):
    """An open source. Batches are never the whole source: a run streams them."""

    pushdown: Pushdown

    def batches(
        self, *, batch_size: int, limit: int | None = None, since: Since | None = None
    ) -> Iterator[Batch]:
        """The source's rows; `since` only when `pushdown.since` (else the gateway filters)."""
        ...

    def deleted_keys(self, *, batch_size: int, since: Since | None = None) -> Iterator[Batch]:
        """Rows naming deleted records (`DeletedRecordsSQL`); raises UnsupportedSystem if none."""
        ...

    def estimate_rows(self) -> int | None:
        """The source's own estimate of the rows a full read returns, when it has one cheaply
        (a query planner's figure); None otherwise. Never a count: that would read twice."""
        ...

    def commit(self) -> None:
        """The run succeeded (its change log is durable): keep what this read remembers
        between runs (a drive reader's files already read). Nothing, for most systems."""
        ...

    def report_to(self, log: Callable[[str], None]) -> None:
        """Where to say, in the run's log, what the read does beyond its rows (a drive
        reader: each file read with its size, each skipped as unchanged). Called once, before
        `batches`; most systems have nothing to add."""
        ...


@runtime_checkable
class SeparateRuns(Protocol):
    """A reader whose definition asks for one run per parameter row (`DynamicParameter`
    with `singleJobPerParam`): each part is detected, logged and applied on its own."""

    def separate_runs(self) -> list[tuple[str, str, Reader]] | None:
        """(stage name, label for the log, reader) per run; None: one run as usual."""
        ...


class LeaseLost(Exception):
    """This worker's run was taken over (its lease ran out, jobs/leases.py): stop without
    writing anything more; a target refuses a commit from a superseded claim with it."""


@dataclass
class Delivery:
    """One message a `MessageSource` received: its rows, or why it cannot give any."""

    message_id: str  # '' when neither broker nor publisher gave one (not deduplicated)
    rows: list[tuple]
    error: str = ""  # set: the message goes to the dead letters with this reason
    content: bytes = b""
    subject: str = ""
    headers: dict[str, str] | None = None


@runtime_checkable
class MessageSource(Protocol):
    """A reader that never ends: a consumer (jobs.sync.consume runs it as a daemon).

    Messages it hands over stay unacknowledged until `ack`, which the engine calls only once
    their change log (or dead letter) is durable.
    """

    columns: list[Any]  # the Columns of every delivery's rows, fixed once known
    batch_count: int  # messages per change log at most
    flush_seconds: float  # how long a batch waits to fill

    def poll(self, max_count: int, timeout: float) -> list[Delivery]:
        """Up to `max_count` messages, waiting at most `timeout` seconds (the flush window)."""
        ...

    def ack(self) -> None:
        """Acknowledge every message polled so far."""
        ...

    def close(self) -> None:
        """Disconnect; messages not acknowledged are delivered again by the broker."""
        ...


@dataclass
class ApplyHooks:
    """What a writer needs from its run: cancellation, progress, log, the pipeline."""

    check_cancel: Callable[[], None] = lambda: None
    progress: Callable[[int, int], None] = lambda upserts, deletes: None
    log: Callable[[str], None] = lambda message: None
    transform: Callable[[Batch], Batch] = lambda batch: batch
    # Called after each chunk is written (tests use it to kill a worker mid-apply).
    after_chunk: Callable[[int], None] = lambda rows: None
    # The run's claim (jobs/leases.py fence_token): a writer whose target has transactions
    # commits only while no later claim has written its own; "" writes unfenced.
    fence: str = ""


@dataclass
class ApplyResult:
    applied: bool
    upserts: int = 0
    deletes: int = 0


class Writer(Protocol):
    """An open target. `apply` is idempotent: a change log already applied is skipped."""

    def applied_position(self) -> str:
        """The last ExecutionId the target committed for this writer ('' when none)."""
        ...

    def apply(
        self,
        header: Header,
        frames: Iterable[Frame],
        execution_id: str,
        hooks: ApplyHooks,
        *,
        recreate: bool = False,
    ) -> ApplyResult:
        """Apply one change log's frames and record `execution_id`, atomically where it can."""
        ...

    def run_script(self, script: str) -> None:
        """`InitScript` / `FinalScript`; raises UnsupportedSystem where there is no such thing."""
        ...

    def streams_beside(self, reader: Reader) -> bool:
        """Whether applying while `reader` reads gains anything (one SQLite file: it does not)."""
        ...


class System(Protocol):
    """A kind of system: opens readers and writers on its connections, and tests them (its
    kind is where jobs.systems.registry names it)."""

    def reader(self, connection: Connection, spec: ReaderSpec) -> Reader: ...

    def writer(self, connection: Connection, spec: WriterSpec, writer_guid: str) -> Writer: ...

    def check(self, connection: Connection) -> str:
        """Really connect; a short description, or an exception with the system's message."""
        ...

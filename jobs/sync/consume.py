"""A consumer job's run: a daemon that turns messages into change logs until it is stopped.

Each cycle takes up to `MessagingBatchCount` messages or what arrives within
`MessagingFlushTTL` seconds, skips those already logged (by message id), writes the rest as one
change log (`{JobKey}_{ExecutionId}.eds`), makes it durable, dead-letters the messages that
cannot become rows — and only then acknowledges them all to the broker. A direct job's writer
then applies the pending change logs. A worker killed at any point loses nothing (what was not
acknowledged comes again) and applies nothing twice (ids already logged are skipped; the
writer's recorded position skips applied logs). docs/messaging.md states the guarantees.
"""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.db import connections

from jobs.models import Job, new_execution_id
from jobs.runner import Cancelled, ExecutionContext
from jobs.runner import error_message as runner_error
from jobs.sync import spec
from jobs.sync.changelog import (
    ChangeLogReader,
    ChangeLogWriter,
    Header,
    job_folder,
    log_file_name,
    pending_logs,
    safe_file_part,
)
from jobs.sync.plan import applied_position, compile_pipeline, data_dir, open_writer, remove_if_done
from jobs.systems import deadletters
from jobs.systems.base import ApplyHooks, Delivery, MessageSource
from jobs.systems.batch import Batch

# A broker that drops the connection is tried again this many times (backoff doubling from
# one second) before the consumer fails with IsConsumerDeamonError.
RECONNECTS = 5
RECONNECT_FIRST_WAIT = 1.0
# Message ids remembered for deduplication (the oldest are forgotten past this).
SEEN_LIMIT = 1_000_000
SUMMARY_SECONDS = 30.0


def seen_path(job: Job) -> Path:
    return data_dir() / "messaging" / f"{job.guid}.sqlite3"


# A consumer's dead letters; the suffix tells `replaydeadletters` they are messages.
DEAD_LETTER_SUFFIX = ".messages.jsonl"


def dead_letter_path(job_key: str) -> Path:
    return data_dir() / "deadletter" / f"{safe_file_part(job_key)}{DEAD_LETTER_SUFFIX}"


class SeenStore:
    """Message ids already in a durable change log (or a dead letter), by ExecutionId.

    An id is entered as `pending` before its change log is committed and marked `done` after;
    on start, pending entries whose change log is not there are forgotten (the broker sends
    those messages again), and those whose log is there are done. So a crash between the two
    steps neither loses nor doubles a message.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, execution_id TEXT NOT NULL)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS batches (execution_id TEXT PRIMARY KEY, state TEXT)"
        )
        self._writes = 0

    def reconcile(self, committed: Callable[[str], bool]) -> int:
        """Settle batches left pending by a crash; returns how many ids were forgotten."""
        forgotten = 0
        for (execution_id,) in self.db.execute(
            "SELECT execution_id FROM batches WHERE state = 'pending'"
        ).fetchall():
            self.db.execute("BEGIN IMMEDIATE")
            if committed(execution_id):
                self.db.execute(
                    "UPDATE batches SET state = 'done' WHERE execution_id = ?", (execution_id,)
                )
            else:
                forgotten += self.db.execute(
                    "DELETE FROM seen WHERE execution_id = ?", (execution_id,)
                ).rowcount
                self.db.execute("DELETE FROM batches WHERE execution_id = ?", (execution_id,))
            self.db.execute("COMMIT")
        return forgotten

    def known(self, ids: Iterable[str]) -> set[str]:
        wanted = [i for i in ids if i]
        found: set[str] = set()
        for at in range(0, len(wanted), 500):
            chunk = wanted[at : at + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self.db.execute(f"SELECT id FROM seen WHERE id IN ({marks})", chunk)
            )
        return found

    def add(self, execution_id: str, ids: list[str], *, state: str) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        # The batch before this one has its change log committed (the consumer goes on only
        # then): it is done. Saves a synchronous write per batch; a crash is settled by
        # reconcile().
        self.db.execute("UPDATE batches SET state = 'done' WHERE state = 'pending'")
        self.db.executemany(
            "INSERT OR IGNORE INTO seen (id, execution_id) VALUES (?, ?)",
            [(i, execution_id) for i in ids if i],
        )
        self.db.execute(
            "INSERT OR REPLACE INTO batches (execution_id, state) VALUES (?, ?)",
            (execution_id, state),
        )
        self.db.execute("COMMIT")
        self._writes += 1
        if self._writes % 1000 == 0:
            self._prune()

    def done(self) -> None:
        """Every batch entered so far has its change log committed (a clean stop)."""
        self.db.execute("UPDATE batches SET state = 'done' WHERE state = 'pending'")

    def _prune(self) -> None:
        self.db.execute(
            "DELETE FROM seen WHERE rowid <= (SELECT MAX(rowid) FROM seen) - ?", (SEEN_LIMIT,)
        )
        self.db.execute(
            "DELETE FROM batches WHERE state = 'done' AND execution_id NOT IN "
            "(SELECT DISTINCT execution_id FROM seen)"
        )

    def close(self) -> None:
        self.db.close()


def dead_letter_entry(job_key: str, delivery: Delivery) -> dict[str, object]:
    entry: dict[str, object] = {
        "job": job_key,
        "message_id": delivery.message_id,
        "subject": delivery.subject,
        "headers": delivery.headers or {},
        "reason": delivery.error,
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
    try:
        entry["content"] = delivery.content.decode("utf-8")
    except UnicodeDecodeError:
        entry["content"] = base64.b64encode(delivery.content).decode()
        entry["content_encoding"] = "base64"
    return entry


class _DirectWriter:
    """A direct job's writer, open for the consumer's lifetime, applying pending change logs
    on a thread of its own: the next batch is received and logged while this one is applied
    (the change logs are durable and acknowledged already; applying is idempotent)."""

    def __init__(self, job: Job) -> None:
        assert job.direct_writer_id is not None
        self.job = Job.objects.select_related("source").get(pk=job.direct_writer_id)
        self.spec, self.writer = open_writer(self.job)
        self.folder = job_folder(data_dir(), self.spec.path)
        self.transform = compile_pipeline(self.spec.pipeline)
        self.upserts = 0
        self.deletes = 0
        self.seconds = 0.0
        self.position: str | None = None
        self.messages: list[str] = []  # the writer's log lines, logged by the consumer's thread
        self.error: BaseException | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="consumer-apply", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def check(self) -> None:
        """Raise the writer's failure in the consumer's thread (the consumer then fails)."""
        if self.error is not None:
            raise RuntimeError(
                f"Writer {self.job.job_key} failed: {runner_error(self.error)}"
            ) from self.error

    def finish(self) -> None:
        """Apply what is pending and stop the thread."""
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                started = time.perf_counter()
                self.apply_pending()
                self.seconds += time.perf_counter() - started
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer's thread by check()
            self.error = exc
        finally:
            connections.close_all()  # this thread's own database connections

    def apply_pending(self) -> None:
        # Asked of the target once; then this writer is the only one moving it.
        if self.position is None:
            self.position = applied_position(self.job, self.spec, self.writer)
        for execution_id, path in pending_logs(self.folder, self.spec.source_key, self.position):
            hooks = ApplyHooks(
                check_cancel=lambda: None,  # a batch is applied whole; stop waits for it
                log=self.messages.append,
                transform=self.transform,
            )
            with ChangeLogReader(path) as change_log:
                result = self.writer.apply(
                    change_log.header, change_log.frames(), execution_id, hooks
                )
            Job.objects.filter(pk=self.job.pk).update(last_execution_id=execution_id)
            self.job.last_execution_id = self.position = execution_id
            self.upserts += result.upserts
            self.deletes += result.deletes
            remove_if_done(self.job, path, execution_id)


class Consumer:
    def __init__(
        self,
        ctx: ExecutionContext,
        job: Job,
        rspec: spec.ReaderSpec,
        source: MessageSource,
        pipeline: Callable[[Batch], Batch],
    ) -> None:
        self.ctx = ctx
        self.job = job
        self.rspec = rspec
        self.source = source
        self.pipeline = pipeline
        self.batch_count = source.batch_count
        self.flush_seconds = source.flush_seconds
        self.folder = job_folder(data_dir(), rspec.path)
        self.dead_letters = dead_letter_path(rspec.job_key)
        self.last_execution_id = 0
        self.counts = {"messages": 0, "rows": 0, "duplicates": 0, "dead": 0, "logs": 0}
        # Where the time goes (in the summary line): waiting/receiving, logging+ack, applying.
        self.seconds = {"receive": 0.0, "log": 0.0, "apply": 0.0}
        # Counters saved once per cycle, in one update (the reader's and its direct writer's).
        self.progress: dict[str, object] = {}
        self.direct_counts = (0, 0)

    def _log_path(self, execution_id: str) -> Path:
        return self.folder / log_file_name(self.rspec.job_key, execution_id)

    def _execution_id(self) -> str:
        # ExecutionIds order the change logs: strictly increasing even within a millisecond.
        self.last_execution_id = max(int(new_execution_id()), self.last_execution_id + 1)
        return str(self.last_execution_id)

    def run(self) -> None:
        ctx = self.ctx
        seen = SeenStore(seen_path(self.job))
        forgotten = seen.reconcile(lambda eid: self._log_path(eid).exists())
        if forgotten:
            ctx.log(
                f"{forgotten} message id(s) of a change log that was never committed forgotten: "
                "the broker delivers those messages again."
            )
        direct = _DirectWriter(self.job) if self.job.direct_writer_id else None
        ctx.log(
            f"Consumer {self.rspec.job_key} listening: batches of up to {self.batch_count} "
            f"message(s) or {self.flush_seconds:g} s"
            + (f"; direct writer {direct.job.job_key}" if direct else "")
            + "."
        )
        try:
            if direct is not None:
                direct.start()
                direct.wake()  # change logs a killed run committed but did not apply
            reported = time.monotonic()
            failures = 0
            while not ctx.cancelled():
                try:
                    started = time.perf_counter()
                    deliveries = self.source.poll(self.batch_count, self.flush_seconds)
                    taken = time.perf_counter()
                    if deliveries:
                        self._take(deliveries, seen)
                        self.source.ack()  # the change log and dead letters are durable
                    self.seconds["receive"] += taken - started
                    self.seconds["log"] += time.perf_counter() - taken
                    failures = 0
                except ConnectionError as exc:
                    failures += 1
                    if failures > RECONNECTS:
                        ctx.progress(is_consumer_daemon_error=True)
                        raise ConnectionError(
                            f"{exc} (gave up after {RECONNECTS} reconnections)"
                        ) from exc
                    ctx.warning(f"{exc}; reconnecting ({failures}/{RECONNECTS}).")
                    self.source.close()
                    time.sleep(min(RECONNECT_FIRST_WAIT * 2 ** (failures - 1), 30))
                    continue
                if direct is not None:
                    direct.check()
                    if deliveries:
                        direct.wake()
                    for message in direct.messages[:]:
                        ctx.debug(message)
                        direct.messages.remove(message)
                    if direct.upserts != self.direct_counts[0]:
                        self.direct_counts = (direct.upserts, direct.deletes)
                        self.progress.update(
                            records_direct_written=direct.upserts,
                            records_direct_deleted=direct.deletes,
                        )
                if self.progress:
                    ctx.progress(**self.progress)
                    self.progress = {}
                if time.monotonic() - reported >= SUMMARY_SECONDS:
                    reported = time.monotonic()
                    ctx.log(self._summary())
            seen.done()  # stopped between batches: every change log entered is committed
        finally:
            self.source.close()
            seen.close()
            if direct is not None:
                direct.finish()
                self.seconds["apply"] = direct.seconds
        if direct is not None:
            direct.check()
            ctx.progress(
                records_direct_written=direct.upserts, records_direct_deleted=direct.deletes
            )
        ctx.log(self._summary() + " Stopped on request.")
        raise Cancelled("Consumer stopped on request.")

    def _summary(self) -> str:
        c = self.counts
        return (
            f"{c['messages']} message(s) received, {c['rows']} row(s) in {c['logs']} change "
            f"log(s), {c['duplicates']} duplicate(s) skipped, {c['dead']} dead-lettered"
            + (f" to {self.dead_letters.relative_to(data_dir())}" if c["dead"] else "")
            + "; seconds receiving {receive:.1f}, logging {log:.1f}, applying {apply:.1f}.".format(
                **self.seconds
            )
        )

    def _take(self, deliveries: list[Delivery], seen: SeenStore) -> None:
        known = seen.known(d.message_id for d in deliveries)
        fresh: list[Delivery] = []
        batch_ids: set[str] = set()
        for delivery in deliveries:
            if delivery.message_id and (
                delivery.message_id in known or delivery.message_id in batch_ids
            ):
                self.counts["duplicates"] += 1
                continue
            batch_ids.add(delivery.message_id)
            fresh.append(delivery)
        self.counts["messages"] += len(deliveries)
        self.progress["records_available"] = self.counts["messages"]
        dead = [d for d in fresh if d.error]
        good = [d for d in fresh if not d.error]
        execution_id = self._execution_id()
        if dead:
            deadletters.append(
                self.dead_letters, [dead_letter_entry(self.rspec.job_key, d) for d in dead]
            )
            for delivery in dead:
                self.ctx.warning(
                    f"Message {delivery.message_id or '(no id)'} dead-lettered: {delivery.error}."
                )
            self.counts["dead"] += len(dead)
        rows = [row for d in good for row in d.rows]
        batch = self.pipeline(Batch(list(self.source.columns), rows)) if rows else None
        if batch is None or not batch.rows:
            # Nothing to log (all dead, or filtered out): remembered as handled all the same.
            seen.add(execution_id, [d.message_id for d in fresh], state="done")
            return
        path = self._log_path(execution_id)
        writer = ChangeLogWriter(
            path, Header(self.rspec.job_key, execution_id, batch.columns, self.rspec.keys)
        )
        try:
            writer.write_upserts(batch.rows)
            seen.add(execution_id, [d.message_id for d in fresh], state="pending")
            writer.seal()
            # Published only while this claim still runs the consumer (a conditional update:
            # LeaseLost otherwise), as a reader's log is (jobs/sync/run.py `_finish_reader`):
            # a consumer resumed after a pause past its lease logs nothing its successor has.
            self.ctx.progress(package_file=str(path))
            writer.publish()
        except BaseException:
            writer.abort()
            raise
        self.counts["rows"] += len(batch.rows)
        self.counts["logs"] += 1
        self.progress.update(
            execution_id=execution_id,
            package_file=str(path),
            record_count=self.counts["rows"],
        )


def run_consumer(
    ctx: ExecutionContext,
    job: Job,
    rspec: spec.ReaderSpec,
    source: MessageSource,
    pipeline: Callable[[Batch], Batch],
) -> None:
    """The consumer daemon; returns only by raising (Cancelled when stopped on request)."""
    Consumer(ctx, job, rspec, source, pipeline).run()

"""`manage.py runjob KEY [--follow]`: start a job as POST /job/start does, for scripts and cron.

With the embedded broker (no CELERY_BROKER_URL) the run happens in this process, on a worker
thread started for it, so the command waits for the outcome either way; on a fleet the job is
queued for its workers, and `--follow` waits for it. The exit code is the outcome: 0 succeeded,
1 failed, 2 cancelled (and 1 for a job that cannot be started).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from gateway.celery import app
from gateway.embedded import EmbeddedWorker
from jobs import definitions
from jobs.models import Execution, ExecutionStatus, Job
from jobs.services import JobDisabled

EXIT_CODES = {ExecutionStatus.SUCCEEDED: 0, ExecutionStatus.FAILED: 1, ExecutionStatus.CANCELLED: 2}
POLL_SECONDS = 0.5
# Without a terminal (a log file, CI) a progress line every few seconds, not a redrawn one.
LOG_EVERY_SECONDS = 5.0


class Command(BaseCommand):
    help = "Start a job by its JobKey; --follow shows its progress; the exit code is its outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="the job's JobKey (a direct job by its reader's key)")
        parser.add_argument("--follow", action="store_true", help="show progress until it ends")
        parser.add_argument(
            "--timeout",
            type=float,
            default=0,
            help="stop waiting after this many seconds (0: none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        job = find_job(options["key"])
        embedded = settings.CELERY_BROKER_URL.startswith("memory://")
        worker = start_local_worker() if embedded else None
        try:
            try:
                execution = definitions.start(job.guid, requested_by="cli:runjob")
            except JobDisabled as exc:
                raise CommandError(str(exc)) from None
            if execution is None:
                raise CommandError(
                    f"Job '{job.job_key}' is already running; it was not started again."
                )
            self.stdout.write(f"Started {job.job_key}: execution {execution.guid}")
            if worker is None and not options["follow"]:
                return
            progress = Progress(self.stdout, options["follow"])
            execution = wait(execution, progress, options["timeout"])
        finally:
            if worker is not None:
                worker.stop()
        self.stdout.write(outcome_line(execution))
        code = EXIT_CODES.get(ExecutionStatus(execution.status), 1)
        if code:
            sys.exit(code)


def find_job(key: str) -> Job:
    job = definitions.stored_jobs().filter(job_key=key).first()
    if job is None:
        known = sorted(definitions.stored_jobs().values_list("job_key", flat=True)[:20])
        hint = f" Jobs: {', '.join(known)}." if known else " There are no jobs yet."
        raise CommandError(f"No job has the key {key!r}.{hint}")
    return definitions.run_target(job)


def start_local_worker() -> Any:
    """The embedded worker `manage.py run` has, for the run this command starts."""
    queues = list(
        dict.fromkeys([settings.CELERY_TASK_DEFAULT_QUEUE, *settings.GATEWAY_EXTRA_QUEUES])
    )
    worker = EmbeddedWorker(app, concurrency=2, queues=queues)
    worker.start()
    return worker


class Progress:
    """Rows so far and the rate, redrawn in place on a terminal, a line now and then elsewhere."""

    def __init__(self, out: OutputWrapper, enabled: bool) -> None:
        self.out = out
        self.enabled = enabled
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.last_line = 0.0
        self.shown = False

    def show(self, execution: Execution) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.tty and now - self.last_line < LOG_EVERY_SECONDS:
            return
        self.last_line = now
        line = progress_line(execution, now - self.started)
        if self.tty:
            self.out.write(f"\r{line}\x1b[K", ending="")
            self.out.flush()
        else:
            self.out.write(line)
        self.shown = True

    def done(self) -> None:
        if self.enabled and self.tty and self.shown:
            self.out.write("")


BAR_WIDTH = 20


def rows_of(execution: Execution) -> int:
    """Rows so far: read by a reader (written by a direct job's writer), applied by a writer."""
    if execution.listener_type == "reader":
        return max(execution.records_available, execution.record_count)
    return execution.record_count


def progress_line(execution: Execution, elapsed: float) -> str:
    rows = rows_of(execution)
    rate = rows / elapsed if elapsed > 0 else 0.0
    # No source tells its row count up front, so the bar sweeps to show the run is alive.
    position = int(elapsed / POLL_SECONDS) % BAR_WIDTH
    bar = "".join("=" if i == position else " " for i in range(BAR_WIDTH))
    minutes, seconds = divmod(int(elapsed), 60)
    return (
        f"[{bar}] {execution.job_key} {execution.status:<9} {rows:>10,} rows "
        f"{rate:>9,.0f} rows/s {minutes:02d}:{seconds:02d}"
    )


def wait(execution: Execution, progress: Progress, timeout: float) -> Execution:
    deadline = time.monotonic() + timeout if timeout > 0 else None
    while True:
        execution.refresh_from_db()
        progress.show(execution)
        if execution.is_finished:
            progress.done()
            return execution
        if deadline is not None and time.monotonic() > deadline:
            progress.done()
            raise CommandError(
                f"Gave up waiting after {timeout:g} s; execution {execution.guid} is "
                f"{execution.status}."
            )
        time.sleep(POLL_SECONDS)


def outcome_line(execution: Execution) -> str:
    seconds = execution.run_seconds
    took = f" in {seconds:.1f} s" if seconds >= 0 else ""
    counts = f"{execution.records_available:,} read, {execution.record_count:,} changed"
    if execution.records_direct_written or execution.records_direct_deleted:
        counts += (
            f", {execution.records_direct_written:,} written, "
            f"{execution.records_direct_deleted:,} deleted"
        )
    elif execution.delete_count:
        counts += f", {execution.delete_count:,} deleted"
    line = f"{execution.job_key} {execution.status}{took}: {counts}"
    if execution.error_message:
        line += f"\n{execution.error_message}"
    return line

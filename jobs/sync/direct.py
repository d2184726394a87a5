"""A direct job's writer, as a step of its reader's run, under the same execution guid.

Either it applies the reader's frames as they are produced (`open_stream`: nothing else is
pending and nothing must change the target before the rows), or it runs once the change log
is written (`run_after`), exactly like a writer run of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from jobs import leases, runner, services
from jobs.models import Execution, ExecutionStatus, Job
from jobs.runner import Cancelled, ExecutionContext
from jobs.sync import spec
from jobs.sync.changelog import Header, job_folder, pending_logs
from jobs.sync.detect import throttled
from jobs.sync.plan import (
    applied_position,
    compile_pipeline,
    data_dir,
    open_writer,
    remove_if_done,
)
from jobs.sync.stream import StreamingApply
from jobs.systems.base import Reader

logger = logging.getLogger(__name__)


def run_after(ctx: ExecutionContext, reader: Job) -> None:
    """Run the direct job's writer now, in this task, under the same execution guid."""
    assert reader.direct_writer_id is not None
    writer_job = Job.objects.get(pk=reader.direct_writer_id)
    options = {k: v for k, v in (ctx.execution.options or {}).items() if k == "recreate"}
    created = services.new_execution(
        writer_job, options=options, guid=ctx.execution.guid, requested_by=ctx.execution.job_key
    )
    claimed = runner.claim(created.pk)
    if claimed is None:
        return
    ctx.log(f"Direct writer {writer_job.job_key} starting.")
    runner.run_claimed(claimed)
    claimed.refresh_from_db()
    ctx.progress(
        records_direct_written=claimed.record_count, records_direct_deleted=claimed.delete_count
    )
    if claimed.status == ExecutionStatus.CANCELLED:
        raise Cancelled("Stopped on request while the writer was applying changes.")
    if claimed.status != ExecutionStatus.SUCCEEDED:
        raise RuntimeError(f"Writer {writer_job.job_key} failed: {claimed.error_message}")
    ctx.log(
        f"Direct writer applied {claimed.record_count} upserts, {claimed.delete_count} deletes."
    )


def open_stream(
    ctx: ExecutionContext, reader: Job, rspec: spec.ReaderSpec, source: Reader, execution_id: str
) -> DirectStream | None:
    """The writer applying frames as they are read, or None when it must run afterwards."""
    try:
        assert reader.direct_writer_id is not None
        writer = Job.objects.select_related("source").get(pk=reader.direct_writer_id)
        wspec, target = open_writer(writer)
        if (
            wspec.init_script
            or wspec.final_script
            or spec.RunOptions.of(ctx.execution.options).recreate
            or wspec.auto_recreate
            or wspec.source_key != rspec.job_key
        ):
            return None  # these change the target before the rows: only once read
        folder = job_folder(data_dir(), wspec.path)
        if folder != job_folder(data_dir(), rspec.path) or not target.streams_beside(source):
            return None
        if pending_logs(folder, wspec.source_key, applied_position(writer, wspec, target)):
            return None  # earlier change logs go first: the writer runs afterwards
        pipeline = compile_pipeline(wspec.pipeline)
    except Exception:  # the writer reports its own problem when it runs afterwards
        return None
    created = services.new_execution(
        writer, guid=ctx.execution.guid, requested_by=ctx.execution.job_key
    )
    claimed = runner.claim(created.pk)
    if claimed is None:
        return None
    stream = StreamingApply(
        target, execution_id, transform=pipeline, fence=leases.fence_token(claimed)
    )
    direct = DirectStream(writer, wspec, claimed, stream)
    ctx.log(f"Direct writer {writer.job_key} applies the changes as they are read.")
    direct.context.log(
        f"Writer {writer.job_key} starting; target {wspec.target_object}; "
        "applying the reader's changes as they are read."
    )
    return direct


class DirectStream:
    """A direct job's writer applying the reader's frames as they are produced."""

    def __init__(
        self, writer: Job, wspec: spec.WriterSpec, execution: Execution, stream: StreamingApply
    ) -> None:
        self.writer = writer
        self.spec = wspec
        self.execution = execution
        self.context = ExecutionContext(execution)
        self.stream = stream
        self._report = throttled(self.context.progress)

    def start(self, header: Header) -> None:
        self.stream.start(header)

    def feed(self, op: bytes, rows: list[tuple]) -> None:
        """Pass a frame to the writer; its counters follow (saved from this thread)."""
        self.stream.feed(op, rows)
        self._report(record_count=self.stream.upserts, delete_count=self.stream.deletes)

    def complete(self, ctx: ExecutionContext, package: str) -> None:
        """The change log is durable: commit the writer's transaction and record it."""
        try:
            result = self.stream.finish(empty=not package)
        except leases.LeaseLost:
            raise  # the run is another worker's now: nothing to record
        except Exception as exc:
            message = runner.error_message(exc)
            self._record_messages()
            self.context.error(message)
            runner.finish(self.execution, ExecutionStatus.FAILED, message)
            raise RuntimeError(f"Writer {self.writer.job_key} failed: {message}") from exc
        self._record_messages()
        execution_id = ctx.execution.execution_id
        if result.applied:
            Job.objects.filter(pk=self.writer.pk).update(last_execution_id=execution_id)
            self.context.log(
                f"Applied {Path(package).name}: {result.upserts} upserts, {result.deletes} "
                f"deletes to {self.spec.target_object}."
            )
            remove_if_done(self.writer, Path(package), execution_id)
        else:
            self.context.log("No changes to apply.")
        self.context.progress(
            record_count=result.upserts,
            delete_count=result.deletes,
            execution_id=execution_id if result.applied else "",
            package_file=package,
        )
        runner.finish(self.execution, ExecutionStatus.SUCCEEDED)
        ctx.progress(records_direct_written=result.upserts, records_direct_deleted=result.deletes)
        ctx.log(f"Direct writer applied {result.upserts} upserts, {result.deletes} deletes.")

    def abandon(self, reason: BaseException) -> None:
        """The reader failed or stopped: roll the writer back and say why."""
        try:
            self.stream.abort()
            if isinstance(reason, leases.LeaseLost):
                return  # the run is another worker's now: nothing to record
            self._record_messages()
            if isinstance(reason, Cancelled):
                self.context.warning("Stopped on request; nothing was applied.")
                runner.finish(self.execution, ExecutionStatus.CANCELLED, "Stopped on request.")
            else:
                message = "The reader failed; nothing was applied."
                self.context.error(message)
                runner.finish(self.execution, ExecutionStatus.FAILED, message)
        except Exception:  # the reader's own error is the one to report
            logger.exception("could not record the direct writer's end")

    def _record_messages(self) -> None:
        for message in self.stream.messages:
            self.context.log(message)
        self.stream.messages.clear()

"""A reader run and a writer run: read → pipeline → detect changes → change log → write.

`run_reader` and `run_writer` are the runner's work for DataZen job readers and writers
(registered in jobs.apps). A direct job's writer is a step of its reader's run
(jobs.sync.direct): it applies the frames as they are read, or the change log afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import transaction

from jobs import leases
from jobs.models import Execution, Job, new_execution_id
from jobs.runner import Cancelled, ExecutionContext
from jobs.sync import consume, direct, spec
from jobs.sync.changelog import (
    ChangeLogReader,
    ChangeLogWriter,
    Header,
    job_folder,
    log_file_name,
    pending_logs,
    publish_sealed,
)
from jobs.sync.collect import fewer_collections
from jobs.sync.detect import DetectionResult, detect, source_hash, strategy_for, throttled
from jobs.sync.plan import (
    applied_position,
    compile_pipeline,
    data_dir,
    drop_older_stages,
    open_writer,
    reader_spec,
    refuse_unsupported,
    remove_if_done,
    stage_for_run,
)
from jobs.sync.stage import StageStore
from jobs.systems import registry
from jobs.systems.base import ApplyHooks, MessageSource, Reader, SeparateRuns
from jobs.systems.batch import Batch

READ_BATCH_ROWS = 10_000


# -- reader ------------------------------------------------------------------------------------
def run_reader(ctx: ExecutionContext) -> None:
    """One reader run: detect changes, write the change log, then (direct job) apply it."""
    with fewer_collections():
        _run_reader(ctx)


def _run_reader(ctx: ExecutionContext) -> None:
    execution = ctx.execution
    job = _job_of(execution)
    rspec = reader_spec(job)
    refuse_unsupported(rspec.unsupported, f"Job reader '{job.job_key}'")
    options = spec.RunOptions.of(execution.options)
    ctx.log(f"Reader {job.job_key} starting (execution {execution.guid}).")
    reader = registry.open_reader(rspec)
    reader.report_to(ctx.log)
    pipeline = compile_pipeline(rspec.pipeline)
    if options.testrun:
        _test_run(ctx, reader, pipeline)
        return
    if isinstance(reader, MessageSource):
        # A consumer never finishes reading: it runs as a daemon until stopped.
        consume.run_consumer(ctx, job, rspec, reader, pipeline)
        return
    # A run taken over after its previous owner published (`_finish_reader`) but before that
    # owner finished: the publication stands, its rename is finished here.
    published = bool(execution.takeovers) and roll_forward(ctx)
    parts = reader.separate_runs() if isinstance(reader, SeparateRuns) else None
    if parts is not None:
        _read_parts(ctx, job, rspec, parts, pipeline, options)
        return
    if published:
        # Its changes are in that change log (each part publishes its own, so a parts run
        # reads again: a part published before finds nothing new in its stage).
        ctx.log("The run's change log was published before the takeover: not read again.")
        if job.direct_writer_id is not None:
            direct.run_after(ctx, job)
        return
    streamed = _read_changes(ctx, job, rspec, reader, pipeline, options)
    if job.direct_writer_id is not None and not streamed:
        direct.run_after(ctx, job)


def _read_parts(
    ctx: ExecutionContext,
    job: Job,
    rspec: spec.ReaderSpec,
    parts: list[tuple[str, str, Reader]],
    pipeline: Callable[[Batch], Batch],
    options: spec.RunOptions,
) -> None:
    """One run per part (a parameter row): each compares its rows with its own last run
    (its own stage) and writes its own change log, so a part that fails or is no longer
    asked for leaves the others' rows alone. The direct writer applies the logs written."""
    totals = {"record_count": 0, "delete_count": 0, "records_available": 0}
    failed: list[str] = []
    if not parts:
        ctx.log("No parameter rows: nothing to run.")
    for stage_name, label, part in parts:
        ctx.raise_if_cancelled()
        ctx.log(f"Run for {label}.")
        try:
            _read_changes(
                ctx, job, rspec, part, pipeline, options, stage_name=stage_name, totals=totals
            )
        except Exception as exc:  # the next parts still run, as separate jobs would
            if isinstance(exc, Cancelled):
                raise
            ctx.log(f"Run for {label} failed: {exc}")
            failed.append(f"{label}: {exc}")
    ctx.progress(**totals)
    if job.direct_writer_id is not None and len(failed) < len(parts):
        direct.run_after(ctx, job)
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(parts)} parameter runs failed (singleJobPerParam); the "
            "others were applied. " + " | ".join(failed)
        )


def _read_changes(
    ctx: ExecutionContext,
    job: Job,
    rspec: spec.ReaderSpec,
    reader: Reader,
    pipeline: Callable[[Batch], Batch],
    options: spec.RunOptions,
    *,
    stage_name: str = "",
    totals: dict[str, int] | None = None,
) -> bool:
    """Detect and log the changes; whether a direct writer applied them as they were read.

    `stage_name` names a part's own stage (one run per parameter row), whose changes the
    direct writer applies afterwards; `totals` adds up the parts' counts."""
    execution = ctx.execution
    execution_id = new_execution_id()
    full = options.resync or rspec.initialize
    path = job_folder(data_dir(), rspec.path) / log_file_name(rspec.job_key, execution_id)
    ctx.log(
        "Strategy: "
        + {"timestamp": "timestamp", "full": "full with upsert keys", "append": "append"}[
            rspec.strategy
        ]
        + (f" on {', '.join(rspec.keys)}" if rspec.keys else "")
        + (f", timestamp column {rspec.timestamp_col}" if rspec.timestamp_col else "")
        + ("; resync: sending every row" if full else "")
        + "."
    )
    ctx.progress(execution_id=execution_id)
    stage_file = stage_for_run(job, stage_name, execution)
    stage = StageStore(stage_file)
    log: list[ChangeLogWriter] = []
    streams = job.is_direct and not stage_name
    stream = direct.open_stream(ctx, job, rspec, reader, execution_id) if streams else None

    def open_log(batch: Batch) -> ChangeLogWriter:
        if not log:
            header = Header(rspec.job_key, execution_id, batch.columns, rspec.keys)
            log.append(ChangeLogWriter(path, header, stream.feed if stream else None))
            if stream is not None:
                stream.start(header)
        return log[0]

    try:
        strategy = strategy_for(
            ctx,
            rspec,
            stage,
            full=full,
            pointer_text=job.last_ts_pointer,
            del_pointer_text=job.last_ts_del_pointer,
            source_hash=source_hash(reader, rspec),
        )
        result = detect(
            ctx=ctx,
            reader=reader,
            strategy=strategy,
            pipeline=pipeline,
            open_log=open_log,
            batch_size=READ_BATCH_ROWS,
        )
        ctx.raise_if_cancelled()
        package = _finish_reader(ctx, job, rspec, reader, log, path, result, totals)
    except BaseException as exc:
        if log:
            log[0].abort()
        stage.rollback()
        if stream is not None:
            stream.abandon(exc)
        raise
    finally:
        stage.close()
    drop_older_stages(job, stage_name, stage_file)
    if stream is None:
        return False
    stream.complete(ctx, package)
    return True


def _finish_reader(
    ctx: ExecutionContext,
    job: Job,
    rspec: spec.ReaderSpec,
    reader: Reader,
    log: list[ChangeLogWriter],
    path: Path,
    result: DetectionResult,
    totals: dict[str, int] | None = None,
) -> str:
    """Publish the run: its change log, its stage, its pointers.

    A worker paused past its lease must never make a change log visible beside its
    successor's (an append-only target would get the rows twice). So the log is sealed
    under its `.part` name first, and the publication is one transaction of the gateway's
    database that is conditional on this claim still running the execution: it records the
    log (`package_file`), the counts and the pointers. Only once it has committed does the
    stage commit and the log get its name. A worker that lost its claim fails the
    transaction (LeaseLost) and rolls everything back; a worker stopped after it cannot undo
    it, and the next owner finishes the rename (`roll_forward`) and does not read again."""
    ctx.check_lease()  # cheap: a worker that lost its claim long ago stops before sealing
    writer = log[0] if log else None
    package = ""
    if writer is not None and writer.changes:
        writer.seal()
        package = str(path)
    elif writer is not None:
        writer.abort()
    fields: dict[str, Any] = {
        "record_count": writer.upserts if writer else 0,
        "delete_count": writer.deletes if writer else 0,
        "records_available": result.rows_read,
        "package_file": package,
        "elapsed_sql_time": result.sql_seconds,
        "elapsed_map_reduce_time": result.detect_seconds,
    }
    if result.pointer_text is not None:
        fields["last_ts_pointer"] = result.pointer_text
    if result.del_pointer_text is not None:
        fields["last_del_ts_pointer"] = result.del_pointer_text
    if totals is not None:
        for name in totals:
            totals[name] += fields.pop(name)
    with transaction.atomic():
        ctx.progress(**fields)  # LeaseLost unless this claim still runs it: nothing published
        if rspec.initialize:
            # Initialize asks for one full run; once it has succeeded the job syncs
            # incrementally.
            definition = dict(job.definition or {})
            definition["Initialize"] = False
            Job.objects.filter(pk=job.pk).update(definition=definition)
        if result.pointer_text is not None:
            Job.objects.filter(pk=job.pk).update(last_ts_pointer=result.pointer_text)
        if result.del_pointer_text is not None:
            Job.objects.filter(pk=job.pk).update(last_ts_del_pointer=result.del_pointer_text)
    result.commit_stage()
    if writer is not None and package:
        writer.publish()
        ctx.log(
            f"Change log {path.name} written: {writer.upserts} upserts, {writer.deletes} deletes."
        )
    else:
        ctx.log("No changes found: no change log written.")
    reader.commit()
    if rspec.initialize:
        ctx.log("Initialize done: the next runs are incremental.")
    return package


def roll_forward(ctx: ExecutionContext) -> bool:
    """Whether an earlier claim of this run published its change log (`_finish_reader`); its
    rename is finished here if that claim stopped before it."""
    package = ctx.execution.package_file
    if not package:
        return False
    if publish_sealed(Path(package)):
        ctx.log(f"Change log {Path(package).name} published by the previous owner: renamed.")
    return True


def _test_run(ctx: ExecutionContext, reader: Reader, pipeline: Callable[[Batch], Batch]) -> None:
    ctx.log("Test run: reading one record, writing nothing.")
    for batch in reader.batches(batch_size=1, limit=1):
        batch = pipeline(batch)
        described = ", ".join(f"{c.name} ({c.type})" for c in batch.columns)
        ctx.log(f"Columns: {described}.")
        if batch.rows:
            ctx.log(
                f"First record: {dict(zip(batch.names, batch.rows[0], strict=False))!r}",
                has_rows=True,
            )
        ctx.progress(records_available=len(batch.rows), record_count=0)
        return


def _job_of(execution: Execution) -> Job:
    if execution.job is None:
        raise ValueError("The job of this execution no longer exists.")
    return execution.job


# -- writer ------------------------------------------------------------------------------------
def run_writer(ctx: ExecutionContext) -> None:
    """Apply every pending change log of the writer's reader, in ExecutionId order."""
    with fewer_collections():
        _run_writer(ctx)


def _run_writer(ctx: ExecutionContext) -> None:
    execution = ctx.execution
    job = _job_of(execution)
    wspec, writer = open_writer(job)
    ctx.log(f"Writer {job.job_key} starting; target {wspec.target_object}.")
    pipeline = compile_pipeline(wspec.pipeline)
    done = applied_position(job, wspec, writer)
    logs = pending_logs(job_folder(data_dir(), wspec.path), wspec.source_key, done)
    ctx.log(f"{len(logs)} change log(s) pending after ExecutionId {done or '(none)'}.")
    recreate = spec.RunOptions.of(execution.options).recreate
    if not logs:
        if recreate:
            ctx.log("recreate=1 ignored: no change log to build the table from.")
        return
    if wspec.init_script:
        writer.run_script(wspec.init_script)
        ctx.log("InitScript executed.")
    upserts = deletes = 0
    report = throttled(ctx.progress)
    for position, (execution_id, path) in enumerate(logs):
        ctx.raise_if_cancelled()
        base_upserts, base_deletes = upserts, deletes

        def progress(u: int, d: int, bu: int = base_upserts, bd: int = base_deletes) -> None:
            report(record_count=bu + u, delete_count=bd + d)
            ctx.raise_if_cancelled()

        hooks = ApplyHooks(
            check_cancel=ctx.raise_if_cancelled,
            progress=progress,
            log=ctx.log,
            transform=pipeline,
            fence=leases.fence_token(execution),
        )
        with ChangeLogReader(path) as change_log:
            result = writer.apply(
                change_log.header,
                change_log.frames(),
                execution_id,
                hooks,
                recreate=recreate and position == 0,
            )
        # The target committed the rows and the ExecutionId together; mirror it here.
        Job.objects.filter(pk=job.pk).update(last_execution_id=execution_id)
        upserts += result.upserts
        deletes += result.deletes
        ctx.progress(
            execution_id=execution_id,
            package_file=str(path),
            record_count=upserts,
            delete_count=deletes,
        )
        if result.applied:
            ctx.log(
                f"Applied {path.name}: {result.upserts} upserts, {result.deletes} deletes "
                f"to {wspec.target_object}."
            )
        else:
            ctx.log(f"{path.name} was already applied to the target: skipped.")
        remove_if_done(job, path, execution_id)
    if wspec.final_script:
        writer.run_script(wspec.final_script)
        ctx.log("FinalScript executed.")

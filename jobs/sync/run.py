"""Reader and writer runs: read → pipeline → change detection → change log → apply.

`run_reader` and `run_writer` are the runner's work for DataZen job readers and writers
(see jobs.runner.WORK); a direct job's writer runs inside its reader's task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q

from jobs.models import Execution, ExecutionStatus, Job, new_execution_id
from jobs.runner import Cancelled, ExecutionContext
from jobs.sync.changelog import (
    ChangeLogWriter,
    Header,
    job_folder,
    log_file_name,
    pending_logs,
)
from jobs.sync.detect import (
    DetectionResult,
    detect_append,
    detect_full,
    detect_timestamp,
    throttled,
)
from jobs.sync.stage import StageStore
from jobs.systems.batch import Batch
from jobs.systems.db.reader import read_batches
from jobs.systems.db.stream import StreamingApply
from jobs.systems.db.url import engine_for
from jobs.systems.db.writer import (
    ApplyHooks,
    WriterSettings,
    applied_execution_id,
    apply_change_log,
)

logger = logging.getLogger(__name__)

READ_BATCH_ROWS = 10_000


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _columns_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def _json_obj(value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def compile_pipeline(defs: Any, where: str) -> Callable[[Batch], Batch]:
    """The PipelineDef as a batch → batch function (identity when there is none)."""
    if isinstance(defs, str):
        defs = json.loads(defs) if defs.strip() else None
    if not defs:
        return lambda batch: batch
    try:
        from jobs.pipeline import compile_pipeline as compile_components
    except ImportError as exc:
        raise RuntimeError(
            f"{where} has a PipelineDef but the pipeline module is not available: {exc}"
        ) from exc
    return compile_components(defs).apply


@dataclass
class ReaderSpec:
    job_key: str
    sql: str
    connection: str
    keys: list[str]
    timestamp_col: str
    initialize: bool
    path: str
    pipeline: Any
    keep_logs: bool
    top_n: int | None
    deleted_method: int
    deleted_sql: str

    @classmethod
    def of(cls, job: Job) -> ReaderSpec:
        d = job.definition or {}
        data = _json_obj(d.get("JsonData"))
        top_override = int(data.get("TopNOverride") or 0)
        bypass = _flag(data.get("BypassTopN"))
        return cls(
            job_key=d.get("JobKey") or job.job_key,
            sql=(d.get("SqlRead") or "").strip(),
            connection=d.get("ConnectionString") or job.connection_key,
            keys=_columns_list(d.get("UpsertColumns")),
            timestamp_col=(d.get("TimestampCol") or "").strip(),
            initialize=_flag(d.get("Initialize")),
            path=d.get("Path") or "",
            pipeline=d.get("PipelineDef"),
            keep_logs=_flag(data.get("KeepChangedLogFiles", True)),
            top_n=top_override if top_override > 0 and not bypass else None,
            deleted_method=int(data.get("DeletedRecordsMethod") or 0),
            deleted_sql=(data.get("DeletedRecordsSQL") or "").strip(),
        )


def data_dir() -> Path:
    return Path(settings.DATA_DIR)


def stage_path(job: Job) -> Path:
    return data_dir() / "stage" / f"{job.guid}.sqlite3"


# -- reader ------------------------------------------------------------------------------------
def run_reader(ctx: ExecutionContext) -> None:
    """One reader run: detect changes, write the change log, then (direct job) apply it."""
    execution = ctx.execution
    job = _job_of(execution)
    spec = ReaderSpec.of(job)
    options = execution.options or {}
    if not spec.sql:
        raise ValueError(f"Job reader '{job.job_key}' has no SqlRead.")
    ctx.log(f"Reader {job.job_key} starting (execution {execution.guid}).")
    engine = engine_for(spec.connection)
    pipeline = compile_pipeline(spec.pipeline, "JobReader")
    if _flag(options.get("testrun")):
        _test_run(ctx, engine, spec, pipeline)
        return
    execution_id = new_execution_id()
    full = _flag(options.get("resync")) or spec.initialize
    folder = job_folder(data_dir(), spec.path)
    path = folder / log_file_name(spec.job_key, execution_id)
    strategy = (
        "timestamp" if spec.timestamp_col else ("full with upsert keys" if spec.keys else "append")
    )
    ctx.log(
        f"Strategy: {strategy}"
        + (f" on {', '.join(spec.keys)}" if spec.keys else "")
        + (f", timestamp column {spec.timestamp_col}" if spec.timestamp_col else "")
        + ("; resync: sending every row" if full else "")
        + "."
    )
    ctx.progress(execution_id=execution_id)
    stage = StageStore(stage_path(job))
    log: list[ChangeLogWriter] = []
    direct: DirectStream | None = None

    def open_log(batch: Batch) -> ChangeLogWriter:
        if not log:
            header = Header(spec.job_key, execution_id, batch.columns, spec.keys)
            log.append(ChangeLogWriter(path, header, direct.feed if direct else None))
            if direct is not None:
                direct.stream.start(header)
        return log[0]

    try:
        if job.is_direct:
            direct = DirectStream.open(ctx, job, spec, engine, execution_id)
        common: dict[str, Any] = {
            "ctx": ctx,
            "engine": engine,
            "spec": spec,
            "stage": stage,
            "pipeline": pipeline,
            "open_log": open_log,
            "batch_size": READ_BATCH_ROWS,
        }
        if spec.timestamp_col:
            result = detect_timestamp(
                **common,
                full=full,
                pointer_text=job.last_ts_pointer,
                del_pointer_text=job.last_ts_del_pointer,
            )
        elif spec.keys:
            result = detect_full(**common, full=full)
        else:
            result = detect_append(**common)
        ctx.raise_if_cancelled()
        package = _finish_reader(ctx, job, spec, stage, log, path, result)
    except BaseException as exc:
        if log:
            log[0].abort()
        stage.rollback()
        if direct is not None:
            direct.abandon(exc)
        raise
    finally:
        stage.close()
    if direct is not None:
        direct.complete(ctx, package)
    elif job.direct_writer_id is not None:
        _run_direct_writer(ctx, job)


def _finish_reader(
    ctx: ExecutionContext,
    job: Job,
    spec: ReaderSpec,
    stage: StageStore,
    log: list[ChangeLogWriter],
    path: Path,
    result: DetectionResult,
) -> str:
    # Order matters: the change log is durable before any pointer moves.
    writer = log[0] if log else None
    package = ""
    if writer is not None and writer.changes:
        writer.commit()
        package = str(path)
        ctx.log(
            f"Change log {path.name} written: {writer.upserts} upserts, {writer.deletes} deletes."
        )
    else:
        if writer is not None:
            writer.abort()
        ctx.log("No changes found: no change log written.")
    result.commit_stage()
    fields: dict[str, Any] = {
        "record_count": writer.upserts if writer else 0,
        "delete_count": writer.deletes if writer else 0,
        "records_available": result.rows_read,
        "package_file": package,
        "elapsed_sql_time": result.sql_seconds,
        "elapsed_map_reduce_time": result.detect_seconds,
    }
    if spec.initialize:
        # Initialize asks for one full run; once it has succeeded the job syncs incrementally.
        definition = dict(job.definition or {})
        definition["Initialize"] = False
        Job.objects.filter(pk=job.pk).update(definition=definition)
        ctx.log("Initialize done: the next runs are incremental.")
    if result.pointer_text is not None:
        Job.objects.filter(pk=job.pk).update(last_ts_pointer=result.pointer_text)
        fields["last_ts_pointer"] = result.pointer_text
    if result.del_pointer_text is not None:
        Job.objects.filter(pk=job.pk).update(last_ts_del_pointer=result.del_pointer_text)
        fields["last_del_ts_pointer"] = result.del_pointer_text
    ctx.progress(**fields)
    return package


def _test_run(
    ctx: ExecutionContext, engine: Any, spec: ReaderSpec, pipeline: Callable[[Batch], Batch]
) -> None:
    ctx.log("Test run: reading one record, writing nothing.")
    for batch in read_batches(engine, spec.sql, batch_size=1, limit=1):
        batch = pipeline(batch)
        described = ", ".join(f"{c.name} ({c.type})" for c in batch.columns)
        ctx.log(f"Columns: {described}.")
        if batch.rows:
            ctx.log(f"First record: {dict(zip(batch.names, batch.rows[0], strict=False))!r}")
        ctx.progress(records_available=len(batch.rows), record_count=0)
        return


def _job_of(execution: Execution) -> Job:
    if execution.job is None:
        raise ValueError("The job of this execution no longer exists.")
    return execution.job


def _run_direct_writer(ctx: ExecutionContext, reader: Job) -> None:
    """Run the direct job's writer now, in this task, under the same execution guid."""
    from jobs import runner, services

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


class DirectStream:
    """A direct job's writer applying the reader's frames as they are produced.

    Used when nothing else is pending for the writer and nothing must change the target before
    the rows (scripts, recreate); its execution shares the reader's guid, as in the sequential
    case (`_run_direct_writer`).
    """

    def __init__(
        self, writer: Job, spec: WriterSpec, execution: Execution, stream: StreamingApply
    ) -> None:
        self.writer = writer
        self.spec = spec
        self.execution = execution
        self.context = ExecutionContext(execution)
        self.stream = stream
        self._report = throttled(self.context.progress)

    def feed(self, op: bytes, rows: list[tuple]) -> None:
        """Pass a frame to the writer; its counters follow (saved from this thread)."""
        self.stream.feed(op, rows)
        self._report(record_count=self.stream.upserts, delete_count=self.stream.deletes)

    @classmethod
    def open(
        cls, ctx: ExecutionContext, reader: Job, spec: ReaderSpec, source: Any, execution_id: str
    ) -> DirectStream | None:
        try:
            assert reader.direct_writer_id is not None
            writer = Job.objects.select_related("source").get(pk=reader.direct_writer_id)
            wspec = WriterSpec.of(writer)
            recreate = _flag((ctx.execution.options or {}).get("recreate"))
            if (
                wspec.init_script
                or wspec.final_script
                or recreate
                or wspec.settings.auto_recreate
                or wspec.source_key != spec.job_key
            ):
                return None  # these change the target before the rows: only once read
            folder = job_folder(data_dir(), wspec.path)
            if folder != job_folder(data_dir(), spec.path):
                return None
            target = engine_for(wspec.connection)
            if target.dialect.name == "sqlite" and source.dialect.name == "sqlite":
                # Both sides are local Python work under one GIL: overlapping them buys
                # nothing measurable (and one file cannot be read and written at once).
                return None
            done = (
                applied_execution_id(_ensure_state(target, writer), writer.guid)
                or writer.last_execution_id
                or wspec.initial_execution_id
            )
            if pending_logs(folder, wspec.source_key, done):
                return None  # earlier change logs go first: the writer runs afterwards
            pipeline = compile_pipeline(wspec.pipeline, "JobWriter")
        except Exception:  # the writer reports its own problem when it runs afterwards
            return None
        from jobs import runner, services

        created = services.new_execution(
            writer,
            guid=ctx.execution.guid,
            requested_by=ctx.execution.job_key,
        )
        claimed = runner.claim(created.pk)
        if claimed is None:
            return None
        stream = StreamingApply(target, wspec.settings, execution_id, transform=pipeline)
        direct = cls(writer, wspec, claimed, stream)
        ctx.log(f"Direct writer {writer.job_key} applies the changes as they are read.")
        direct.context.log(
            f"Writer {writer.job_key} starting; target {wspec.settings.target_object}; "
            "applying the reader's changes as they are read."
        )
        return direct

    def complete(self, ctx: ExecutionContext, package: str) -> None:
        """The change log is durable: commit the writer's transaction and record it."""
        from jobs import runner

        try:
            result = self.stream.finish(empty=not package)
        except Exception as exc:
            message = runner._message(exc)
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
                f"deletes to {self.spec.settings.target_object}."
            )
            _maybe_remove(self.writer, Path(package), execution_id)
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
        from jobs import runner

        try:
            self.stream.abort()
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


# -- writer ------------------------------------------------------------------------------------
@dataclass
class WriterSpec:
    connection: str
    settings: WriterSettings
    path: str
    source_key: str
    pipeline: Any
    init_script: str
    final_script: str
    initial_execution_id: str

    @classmethod
    def of(cls, job: Job) -> WriterSpec:
        d = job.definition or {}
        options = _json_obj(d.get("Options"))
        source = job.source
        source_def = source.definition if source is not None else {}
        target = (d.get("TargetObject") or "").strip()
        if not target:
            raise ValueError(f"Job writer '{job.job_key}' has no TargetObject.")
        return cls(
            connection=d.get("ConnectionString") or job.connection_key,
            settings=WriterSettings(
                target_object=target,
                writer_guid=job.guid,
                keys=_columns_list(d.get("UpsertColumns")),
                propagate_delete=_flag(d.get("PropagateDelete")),
                batch_count=int(options.get("BatchCount") or 0) or 10_000,
                exec_timeout=int(options.get("ExecTimeout") or 0),
                auto_recreate=_flag(options.get("AutoRecreate")),
            ),
            path=d.get("Path") or (source_def or {}).get("Path") or "",
            source_key=d.get("SourceJobKey") or (source.job_key if source else ""),
            pipeline=d.get("PipelineDef"),
            init_script=(options.get("InitScript") or d.get("InitScript") or "").strip(),
            final_script=(options.get("FinalScript") or d.get("FinalScript") or "").strip(),
            initial_execution_id=str(d.get("InitialExecutionId") or "").strip(),
        )


def run_writer(ctx: ExecutionContext) -> None:
    """Apply every pending change log of the writer's reader, in ExecutionId order."""
    execution = ctx.execution
    job = _job_of(execution)
    spec = WriterSpec.of(job)
    if not spec.source_key:
        raise ValueError(f"Job writer '{job.job_key}' has no SourceJobKey.")
    ctx.log(f"Writer {job.job_key} starting; target {spec.settings.target_object}.")
    engine = engine_for(spec.connection)
    pipeline = compile_pipeline(spec.pipeline, "JobWriter")
    done = (
        applied_execution_id(_ensure_state(engine, job), job.guid)
        or job.last_execution_id
        or spec.initial_execution_id
    )
    folder = job_folder(data_dir(), spec.path)
    logs = pending_logs(folder, spec.source_key, done)
    ctx.log(f"{len(logs)} change log(s) pending after ExecutionId {done or '(none)'}.")
    recreate = _flag((execution.options or {}).get("recreate"))
    if not logs:
        if recreate:
            ctx.log("recreate=1 ignored: no change log to build the table from.")
        return
    if spec.init_script:
        _run_script(engine, spec.init_script)
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
        )
        result = apply_change_log(
            engine, path, execution_id, spec.settings, hooks, recreate=recreate and position == 0
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
                f"to {spec.settings.target_object}."
            )
        else:
            ctx.log(f"{path.name} was already applied to the target: skipped.")
        _maybe_remove(job, path, execution_id)
    if spec.final_script:
        _run_script(engine, spec.final_script)
        ctx.log("FinalScript executed.")


def _ensure_state(engine: Any, job: Job) -> Any:
    from jobs.systems.db.writer import ensure_state

    ensure_state(engine, job.guid)
    return engine


def _run_script(engine: Any, script: str) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(script)


def _maybe_remove(job: Job, path: Path, execution_id: str) -> None:
    """Delete an applied change log unless the reader keeps them or another writer needs it."""
    source = job.source
    if source is None or ReaderSpec.of(source).keep_logs:
        return
    others = Job.objects.filter(source=source).exclude(pk=job.pk)
    behind = others.filter(Q(last_execution_id="") | Q(last_execution_id__isnull=True)).exists()
    behind = behind or any(
        not other.last_execution_id.isdigit() or int(other.last_execution_id) < int(execution_id)
        for other in others
    )
    if not behind:
        path.unlink(missing_ok=True)

"""What a job's run works on: its typed specs, its folders, its writer and where it stands.

Shared by the reader and writer runs (jobs.sync.run) and the direct writer (jobs.sync.direct).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q

from jobs import pipeline as pipelines
from jobs.leases import fence_token
from jobs.models import Execution, Job
from jobs.sync import spec
from jobs.systems import registry
from jobs.systems.base import Writer
from jobs.systems.batch import Batch


def data_dir() -> Path:
    return Path(settings.DATA_DIR)


# A stage generation's name: the job's stage name, then the fence token of the claim that made it.
_GENERATION = re.compile(r"\.gen-(\d{15}\.\d{20}\.\d{10})\.sqlite3")


def stage_path(job: Job, part: str = "") -> Path:
    """The job's current stage (its latest generation); a part's own (one run per parameter
    row) when `part` names one."""
    folder = data_dir() / "stage"
    base = f"{job.guid}{'.' + part if part else ''}"
    latest: tuple[str, Path] | None = None
    for entry in folder.glob(glob.escape(base) + ".gen-*.sqlite3"):
        match = _GENERATION.fullmatch(entry.name[len(base) :])
        if match and (latest is None or match.group(1) > latest[0]):
            latest = (match.group(1), entry)
    return latest[1] if latest else folder / f"{base}.sqlite3"


def stage_for_run(job: Job, part: str, execution: Execution) -> Path:
    """The stage a reader's run works in: the current one, unless the run was taken over.

    A worker frozen mid-read (SIGSTOP, a paused VM) keeps its SQLite write transaction on the
    stage open, and the new owner would wait for it (then fail, "database is locked"). So a
    taken-over run works in a generation of its own, named by its claim's fence token: a copy
    of what the current generation last committed (readable beside the frozen writer, the
    store being in WAL mode). The latest generation is the current one, and a later claim's
    token is larger: whatever the frozen worker commits later lands in a generation nobody
    reads again (it commits only after publishing its run, which its lost claim forbids)."""
    current = stage_path(job, part)
    if not execution.takeovers:
        return current
    base = f"{job.guid}{'.' + part if part else ''}"
    own = current.with_name(f"{base}.gen-{fence_token(execution)}.sqlite3")
    if own == current or own.exists():
        return own
    own.parent.mkdir(parents=True, exist_ok=True)
    building = own.with_name(own.name + ".tmp")
    building.unlink(missing_ok=True)
    target = sqlite3.connect(building)
    try:
        if current.exists():
            source = sqlite3.connect(current, timeout=30)
            try:
                source.backup(target)
            finally:
                source.close()
    finally:
        target.close()
    os.replace(building, own)
    return own


def drop_older_stages(job: Job, part: str, current: Path) -> None:
    """Remove the generations before `current` (once `current` has committed a run); a frozen
    worker still holding one keeps its open file, which no one reads again."""
    folder = current.parent
    base = f"{job.guid}{'.' + part if part else ''}"
    if current.name == f"{base}.sqlite3":
        return
    older = [folder / f"{base}.sqlite3"]
    for entry in folder.glob(glob.escape(base) + ".gen-*.sqlite3"):
        if _GENERATION.fullmatch(entry.name[len(base) :]) and entry.name < current.name:
            older.append(entry)
    for path in older:
        for suffix in ("", "-wal", "-shm"):
            # One left behind is removed by a later run: the current generation is what counts.
            with contextlib.suppress(OSError):
                path.with_name(path.name + suffix).unlink(missing_ok=True)


def reader_spec(job: Job) -> spec.ReaderSpec:
    parsed = spec.ReaderSpec.parse(job.definition or {})
    return replace(
        parsed,
        job_key=parsed.job_key or job.job_key,
        connection=parsed.connection or job.connection_key,
    )


def writer_spec(job: Job) -> spec.WriterSpec:
    source = job.source
    parsed = spec.WriterSpec.parse(
        job.definition or {},
        source_key=source.job_key if source is not None else "",
        source_path=spec.text((source.definition or {}).get("Path")) if source else "",
    )
    return replace(parsed, connection=parsed.connection or job.connection_key)


def refuse_unsupported(features: list[str], what: str) -> None:
    if features:
        raise spec.UnsupportedFeature(
            f"{what} uses {', '.join(features)}, which this gateway does not support yet; "
            "nothing was run."
        )


def compile_pipeline(components: list[dict[str, Any]]) -> Callable[[Batch], Batch]:
    """The PipelineDef as a batch → batch function (identity when there is none)."""
    if not components:
        return lambda batch: batch
    return pipelines.compile_pipeline(components).apply


def open_writer(job: Job) -> tuple[spec.WriterSpec, Writer]:
    wspec = writer_spec(job)
    refuse_unsupported(wspec.unsupported, f"Job writer '{job.job_key}'")
    if not wspec.source_key:
        raise ValueError(f"Job writer '{job.job_key}' has no SourceJobKey.")
    return wspec, registry.open_writer(wspec, job.guid)


def applied_position(job: Job, wspec: spec.WriterSpec, writer: Writer) -> str:
    """Where the writer is: the target's record first (it commits with the rows)."""
    return writer.applied_position() or job.last_execution_id or wspec.initial_execution_id


def remove_if_done(job: Job, path: Path, execution_id: str) -> None:
    """Delete an applied change log unless the reader keeps them or another writer needs it."""
    source = job.source
    if source is None or reader_spec(source).keep_logs:
        return
    others = Job.objects.filter(source=source).exclude(pk=job.pk)
    behind = others.filter(Q(last_execution_id="") | Q(last_execution_id__isnull=True)).exists()
    behind = behind or any(
        not other.last_execution_id.isdigit() or int(other.last_execution_id) < int(execution_id)
        for other in others
    )
    if not behind:
        path.unlink(missing_ok=True)

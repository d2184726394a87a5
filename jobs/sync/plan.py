"""What a job's run works on: its typed specs, its folders, its writer and where it stands.

Shared by the reader and writer runs (jobs.sync.run) and the direct writer (jobs.sync.direct).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q

from jobs import pipeline as pipelines
from jobs.models import Job
from jobs.sync import spec
from jobs.systems import registry
from jobs.systems.base import Writer
from jobs.systems.batch import Batch


def data_dir() -> Path:
    return Path(settings.DATA_DIR)


def stage_path(job: Job, part: str = "") -> Path:
    """The job's stage; a part's own (one run per parameter row) when `part` names one."""
    return data_dir() / "stage" / f"{job.guid}{'.' + part if part else ''}.sqlite3"


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

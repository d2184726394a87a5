"""DataZen job definitions (JobCreation payloads): validate, store, update, delete, run dynamically.

A job's `definition` is the vendor object exactly as sent; the columns beside it are derived
from it here, and the gateway-maintained values (guid, status, pointers…) live in columns only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs import agent, connections, pipeline, services
from jobs.models import Execution, Job, JobKind, JobStatus, new_guid
from jobs.schedule import quartz, triggers
from jobs.sync import spec

MAX_KEY_LENGTH = 400
DIRECT_WRITER_PREFIX = "__"
RUN_OPTIONS = ("resync", "recreate", "testrun")


class DefinitionError(Exception):
    """A job definition or request the gateway refuses; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JobNotFound(DefinitionError):
    """No (visible) job has the guid or key asked for."""


class JobConflict(DefinitionError):
    """A job key or guid already in use, or a job in a state that forbids the change."""


# --- which jobs a query sees ---------------------------------------------------------------


def stored_jobs() -> QuerySet[Job]:
    return Job.objects.filter(is_dynamic=False).exclude(kind=JobKind.FLOW)


def dynamic_jobs() -> QuerySet[Job]:
    """Dynamic jobs live for one boot: those of earlier boots are invisible (and purged)."""
    return Job.objects.filter(is_dynamic=True, boot_id=agent.boot_id())


def visible_jobs() -> QuerySet[Job]:
    return Job.objects.exclude(kind=JobKind.FLOW).filter(
        Q(is_dynamic=False) | Q(is_dynamic=True, boot_id=agent.boot_id())
    )


def purge_stale_dynamic_jobs() -> int:
    """Delete the dynamic jobs of earlier boots; their executions and logs stay."""
    stale = Job.objects.filter(is_dynamic=True).exclude(boot_id=agent.boot_id())
    count, _ = stale.delete()
    return count


def get_stored_job(guid: str | None) -> Job:
    """The stored (not dynamic) job with this guid; a clear error otherwise."""
    if not guid:
        raise DefinitionError("The 'guid' parameter is required.")
    job = visible_jobs().select_related("direct_writer").filter(guid=guid).first()
    if job is None:
        raise JobNotFound(f"No job has guid '{guid}'.")
    if job.is_dynamic:
        raise DefinitionError(
            f"Job '{guid}' is a dynamic job; this operation does not support them."
        )
    return job


def get_job(guid: str | None) -> Job:
    """A stored job or a dynamic job of this boot."""
    if not guid:
        raise DefinitionError("The 'guid' parameter is required.")
    job = visible_jobs().select_related("direct_writer").filter(guid=guid).first()
    if job is None:
        raise JobNotFound(f"No job has guid '{guid}'.")
    return job


def direct_reader_of(job: Job) -> Job | None:
    """The reader whose direct writer `job` is, if any."""
    return Job.objects.filter(direct_writer=job).first()


# --- validation -----------------------------------------------------------------------------


def validate_cron(expression: str) -> None:
    try:
        quartz.validate_cron(expression)
    except ValueError as exc:
        raise DefinitionError(str(exc)) from exc


def validate_pipeline(value: Any, where: str) -> None:
    """Known component types with sensible settings; the stored value stays as it was sent."""
    try:
        components = spec.components(value, where)
        pipeline.validate_pipeline(components)
    except spec.SpecError as exc:
        raise DefinitionError(str(exc)) from exc
    except ValueError as exc:  # PipelineError names the step and the component
        raise DefinitionError(f"{where}.PipelineDef: {exc}") from exc


def validate_job_triggers(json_data: dict[str, Any], where: str) -> None:
    try:
        triggers.validate_triggers(json_data)
    except ValueError as exc:
        raise DefinitionError(f"{where}.JsonData.JobTriggers: {exc}") from exc


def _bool(obj: dict[str, Any], name: str, where: str, default: bool) -> bool:
    try:
        return spec.flag(obj.get(name), f"{where}.{name}", default=default)
    except spec.SpecError as exc:
        raise DefinitionError(str(exc)) from exc


def _pointer(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def parse_datetime(value: Any) -> datetime | None:
    """DataZen dates: with or without fractions (up to 7 digits) and `Z`; year 1 means never."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    # .NET writes seven fractional digits; Python reads at most six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.year <= 1:
        return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
    return parsed


def looks_like_connection_string(value: str) -> bool:
    """A full connection string rather than the key of a stored one."""
    return any(mark in value for mark in ("=", ";", "://")) or value.lstrip().startswith("{")


@dataclass
class Payload:
    """A JobCreation body, checked: its reader and writer objects (either may be None)."""

    reader: dict[str, Any] | None
    writer: dict[str, Any] | None


def read_payload(body: Any, *, dynamic: bool = False) -> Payload:
    if not isinstance(body, dict):
        raise DefinitionError(
            "The body must be a JobCreation object with JobReader and/or JobWriter."
        )
    reader, writer = body.get("JobReader"), body.get("JobWriter")
    for name, value in (("JobReader", reader), ("JobWriter", writer)):
        if value is not None and not isinstance(value, dict):
            raise DefinitionError(f"{name} must be an object or null.")
    if reader is None and writer is None:
        raise DefinitionError("At least one of JobReader and JobWriter must be provided.")
    for where, obj in (("JobReader", reader), ("JobWriter", writer)):
        if obj is None:
            continue
        _check_fields(obj, where)
        key = obj.get("JobKey") or ""
        if len(key) > MAX_KEY_LENGTH:
            raise DefinitionError(f"{where}.JobKey is longer than {MAX_KEY_LENGTH} characters.")
        if not dynamic and where == "JobReader" and not key:
            raise DefinitionError("JobReader.JobKey is required.")
        if not (obj.get("ConnectionString") or "").strip():
            raise DefinitionError(f"{where}.ConnectionString is required.")
        connections.check_reference(obj["ConnectionString"], where=f"{where}.ConnectionString")
        cron = obj.get("CronSchedule") or ""
        if cron.strip():
            validate_cron(cron.strip())
        validate_pipeline(obj.get("PipelineDef"), where)
        json_data = obj.get("JsonData")
        if json_data is not None and not isinstance(json_data, dict | str):
            raise DefinitionError(f"{where}.JsonData must be an object or null.")
        if json_data:
            validate_job_triggers(_parsed(spec.json_object, json_data, f"{where}.JsonData"), where)
    if writer is not None and reader is None and not dynamic and not writer.get("SourceJobKey"):
        raise DefinitionError(
            "A JobWriter needs a JobReader: send both (a direct job), or name an existing "
            "reader in JobWriter.SourceJobKey."
        )
    return Payload(reader=reader, writer=writer)


def _parsed(parse: Any, *args: Any, **kwargs: Any) -> Any:
    """A spec parser's result, its SpecError as the API's DefinitionError."""
    try:
        return parse(*args, **kwargs)
    except spec.SpecError as exc:
        raise DefinitionError(str(exc)) from exc


def _check_fields(obj: dict[str, Any], where: str) -> None:
    """Every field a run reads, read now by the same parser, so a saved job can run."""
    for name in (
        *("Guid", "JobKey", "ConnectionString", "CronSchedule", "Path", "SourceJobKey"),
        "SystemName",
    ):
        _parsed(spec.text, obj.get(name), f"{where}.{name}")
    _bool(obj, "Active", where, True)
    if where == "JobReader":
        _parsed(spec.ReaderSpec.parse, obj, where)
    else:
        _parsed(spec.WriterSpec.parse, obj, where=where)


def _columns(kind: str, definition: dict[str, Any]) -> dict[str, Any]:
    """The indexed columns derived from a definition (not the gateway-maintained ones)."""
    connection = (definition.get("ConnectionString") or "").strip()
    return {
        "kind": kind,
        "job_key": definition.get("JobKey") or "",
        "connection_key": "" if looks_like_connection_string(connection) else connection,
        "system_name": (definition.get("SystemName") or "")[:100],
        "cron_schedule": (definition.get("CronSchedule") or "").strip(),
        "active": _bool(definition, "Active", kind, True),
    }


def _initial_state(kind: str, definition: dict[str, Any]) -> dict[str, Any]:
    """What a new job takes from the payload as its starting state (an exported job resumes)."""
    state: dict[str, Any] = {"status": JobStatus.READY, "last_run_time": None}
    if kind == JobKind.READER:
        state["last_ts_pointer"] = _pointer(definition.get("LastTsPointer"))
        state["last_ts_del_pointer"] = _pointer(definition.get("LastTsDelPointer"))
    else:
        state["last_execution_id"] = _pointer(definition.get("LastExecutionId"))
    created = parse_datetime(definition.get("CreatedOn"))
    state["created_on"] = created or timezone.now()
    return state


def _link_direct(reader: dict[str, Any], writer: dict[str, Any]) -> None:
    """Fill the keys that tie a direct job's writer to its reader, as DataZen does."""
    reader_key = reader["JobKey"]
    named = _parsed(spec.json_object, reader.get("JsonData"), "JobReader.JsonData").get(
        "DirectWriter"
    )
    if not writer.get("JobKey"):
        writer["JobKey"] = named or DIRECT_WRITER_PREFIX + reader_key
    if not writer.get("SourceJobKey"):
        writer["SourceJobKey"] = reader_key
    elif writer["SourceJobKey"] != reader_key:
        raise DefinitionError(
            f"JobWriter.SourceJobKey '{writer['SourceJobKey']}' does not match "
            f"JobReader.JobKey '{reader_key}' of the same direct job."
        )
    if named and named != writer["JobKey"]:
        raise DefinitionError(
            f"JobReader.JsonData.DirectWriter '{named}' does not match "
            f"JobWriter.JobKey '{writer['JobKey']}'."
        )
    _name_direct_writer(reader, writer["JobKey"])


def _set_direct_writer(reader: dict[str, Any], writer_key: str | None) -> None:
    """Set JsonData.DirectWriter, keeping JsonData in the shape the client sent (object or text)."""
    raw = reader.get("JsonData")
    data = _parsed(spec.json_object, raw, "JobReader.JsonData")
    if writer_key is None and not data.get("DirectWriter"):
        return
    data["DirectWriter"] = writer_key
    reader["JsonData"] = json.dumps(data) if isinstance(raw, str) else data


def _name_direct_writer(reader: dict[str, Any], writer_key: str) -> None:
    _set_direct_writer(reader, writer_key)


def _unlink_direct(reader: dict[str, Any]) -> None:
    _set_direct_writer(reader, None)


def _check_free(job_key: str, guid: str | None, *, exclude: list[int] | None = None) -> None:
    others = stored_jobs().exclude(pk__in=exclude or [])
    if others.filter(job_key=job_key).exists():
        raise JobConflict(f"JobKey '{job_key}' is already used by another job.")
    # Job keys are unique across every kind, DataFlux job flows included.
    if Job.objects.filter(kind=JobKind.FLOW, job_key=job_key).exists():
        raise JobConflict(f"JobKey '{job_key}' is already the name of a DataFlux job flow.")
    if guid and Job.objects.exclude(pk__in=exclude or []).filter(guid=guid).exists():
        raise JobConflict(f"Guid '{guid}' is already used by another job.")


def _stored_reader(source_key: str) -> Job:
    reader = stored_jobs().filter(kind=JobKind.READER, job_key=source_key).first()
    if reader is None:
        raise DefinitionError(
            f"JobWriter.SourceJobKey '{source_key}' names no job reader; create the reader first."
        )
    return reader


def _copy(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    # A deep copy through JSON: what is stored is exactly what came in, never aliased.
    return None if obj is None else json.loads(json.dumps(obj))


def _new_job(kind: str, definition: dict[str, Any], **extra: Any) -> Job:
    guid = definition.get("Guid") or new_guid()
    definition["Guid"] = guid
    job = Job(
        guid=guid,
        definition=definition,
        **_columns(kind, definition),
        **_initial_state(kind, definition),
        **extra,
    )
    job.save()
    return job


# --- stored jobs ----------------------------------------------------------------------------


@transaction.atomic
def create_job(body: Any) -> list[Job]:
    """POST /job: a reader, a writer for an existing reader, or a direct job (both)."""
    payload = read_payload(body)
    reader_def, writer_def = _copy(payload.reader), _copy(payload.writer)
    created: list[Job] = []
    reader: Job | None = None
    if reader_def is not None:
        if writer_def is not None:
            _link_direct(reader_def, writer_def)
        _check_free(reader_def["JobKey"], reader_def.get("Guid"))
        reader = _new_job(JobKind.READER, reader_def)
        created.append(reader)
    if writer_def is not None:
        source = reader or _stored_reader(writer_def["SourceJobKey"])
        if not writer_def.get("JobKey"):
            writer_def["JobKey"] = DIRECT_WRITER_PREFIX + source.job_key
        _check_free(writer_def["JobKey"], writer_def.get("Guid"))
        writer = _new_job(JobKind.WRITER, writer_def, source=source)
        created.append(writer)
        if reader is not None:
            reader.direct_writer = writer
            reader.save(update_fields=["direct_writer", "updated_at"])
    return created


def _update_fields(job: Job, definition: dict[str, Any]) -> None:
    # Guid and the maintained columns stay; everything else is what the client sent now.
    definition["Guid"] = job.guid
    job.definition = definition
    old_cron, old_active = job.cron_schedule, job.active
    for name, value in _columns(job.kind, definition).items():
        setattr(job, name, value)
    if definition.get("Active") is None:  # not sent: a PUT does not re-enable by omission
        job.active = old_active
    if job.cron_schedule != old_cron:
        # A new schedule starts afresh; an unchanged one keeps a missed window to catch up.
        job.next_run_at = None
    job.save()


@transaction.atomic
def update_job(body: Any) -> list[Job]:
    """PUT /job: replace the definitions of an existing reader and/or writer, by Guid."""
    payload = read_payload(body)
    reader_def, writer_def = _copy(payload.reader), _copy(payload.writer)
    updated: list[Job] = []
    reader: Job | None = None
    if reader_def is not None:
        reader = _locked(reader_def.get("Guid"), "JobReader", JobKind.READER)
        if writer_def is not None:
            if not writer_def.get("Guid") and reader.direct_writer_id is not None:
                writer_def["Guid"] = reader.direct_writer.guid  # type: ignore[union-attr]
            _link_direct(reader_def, writer_def)
        elif reader.direct_writer is not None:
            # A direct job updated through its reader alone keeps its writer.
            _name_direct_writer(reader_def, reader.direct_writer.job_key)
        else:
            _unlink_direct(reader_def)
        _check_free(reader_def["JobKey"], None, exclude=[reader.pk])
        _update_fields(reader, reader_def)
        updated.append(reader)
    if writer_def is not None:
        if writer_def.get("Guid"):
            writer = _locked(writer_def["Guid"], "JobWriter", JobKind.WRITER)
            if reader is not None and writer.source_id != reader.pk:
                raise DefinitionError(
                    f"JobWriter '{writer.guid}' does not belong to JobReader '{reader.guid}'."
                )
            source = writer.source
            if source is not None and not writer_def.get("SourceJobKey"):
                writer_def["SourceJobKey"] = source.job_key
            moved = source is not None and writer_def["SourceJobKey"] != source.job_key
            if reader is None and moved:
                writer.source = _stored_reader(writer_def["SourceJobKey"])
            if not writer_def.get("JobKey"):
                writer_def["JobKey"] = writer.job_key
            _check_free(writer_def["JobKey"], None, exclude=[writer.pk])
            _update_fields(writer, writer_def)
            if reader is not None and reader.direct_writer_id != writer.pk:
                # Sent with its reader, a writer of that reader becomes its direct writer.
                reader.direct_writer = writer
                reader.save(update_fields=["direct_writer", "updated_at"])
        else:
            # Turning a reader into a direct job: its writer is created here.
            if reader is None:
                raise DefinitionError("JobWriter.Guid is required to update a job.")
            _check_free(writer_def["JobKey"], None)
            writer = _new_job(JobKind.WRITER, writer_def, source=reader)
            reader.direct_writer = writer
            reader.save(update_fields=["direct_writer", "updated_at"])
        updated.append(writer)
    return updated


def _locked(guid: str | None, where: str, kind: str) -> Job:
    if not guid:
        raise DefinitionError(f"{where}.Guid is required to update a job.")
    # The job's row alone: PostgreSQL refuses FOR UPDATE over the nullable side of the outer
    # joins select_related would add (direct_writer, source); those load when first used.
    job = Job.objects.select_for_update().filter(guid=guid).first()
    if job is None or (job.is_dynamic and job.boot_id != agent.boot_id()):
        raise JobNotFound(f"No job has guid '{guid}'.")
    if job.is_dynamic:
        raise DefinitionError("Dynamic jobs cannot be updated or deleted.")
    if job.kind != kind:
        raise DefinitionError(f"{where}.Guid '{guid}' is a job {job.kind}, not a job {kind}.")
    return job


@transaction.atomic
def delete_job(guid: str | None) -> None:
    """DELETE /job: the job, and for a direct job its writer; executions and logs stay."""
    job = get_stored_job(guid)
    doomed = [job.pk]
    if job.direct_writer_id is not None:
        doomed.append(job.direct_writer_id)
    if job.kind == JobKind.WRITER:
        for reader in Job.objects.filter(direct_writer=job):
            _unlink_direct(reader.definition)
            reader.save(update_fields=["definition", "updated_at"])
    # Writers that apply this reader's change logs cannot outlive it (a writer needs a reader).
    Job.objects.filter(pk__in=doomed).delete()


@transaction.atomic
def set_active(guid: str | None, active: str | None) -> Job:
    """Enable (1) or disable (0) a stored job; a direct job's writer follows its reader."""
    if active not in ("0", "1"):
        raise DefinitionError("The 'active' parameter must be 0 (disable) or 1 (enable).")
    job = get_stored_job(guid)
    flag = active == "1"
    targets = [job.pk] + ([job.direct_writer_id] if job.direct_writer_id else [])
    Job.objects.filter(pk__in=targets).update(active=flag, updated_at=timezone.now())
    job.active = flag
    return job


@transaction.atomic
def set_ts_pointer(guid: str | None, kind: str | None, value: str | None) -> Job:
    """A reader's high-water mark for reads (`read`) or deletes (`delete`)."""
    if kind not in ("read", "delete"):
        raise DefinitionError("The 'type' parameter must be 'read' or 'delete'.")
    job = get_stored_job(guid)
    if job.kind != JobKind.READER:
        raise DefinitionError("Only a job reader has timestamp pointers.")
    field = "last_ts_pointer" if kind == "read" else "last_ts_del_pointer"
    setattr(job, field, value or "")
    job.save(update_fields=[field, "updated_at"])
    return job


# --- running ---------------------------------------------------------------------------------


def run_target(job: Job) -> Job:
    """The job a start applies to: a direct job starts through its reader."""
    if job.kind == JobKind.WRITER:
        reader = direct_reader_of(job)
        if reader is not None:
            return reader
    return job


def start(guid: str | None, *, requested_by: str = "") -> Execution | None:
    """POST /job/start: None when it was already running (still OK for the client)."""
    job = run_target(get_stored_job(guid))
    return services.start_job(job, requested_by=requested_by)


def stop(guid: str | None) -> int:
    """Stop a job's pending and running executions (a direct job's writer too)."""
    job = get_job(guid)
    asked = services.stop_job(job)
    if job.direct_writer_id is not None:
        asked += services.stop_job(job.direct_writer)  # type: ignore[arg-type]
    return asked


def run_options(values: dict[str, str | None]) -> dict[str, bool]:
    """resync / recreate / testrun query flags (1 or 0) → Execution.options."""
    options: dict[str, bool] = {}
    for name in RUN_OPTIONS:
        raw = values.get(name)
        if raw in (None, ""):
            continue
        if raw not in ("0", "1", "true", "false"):
            raise DefinitionError(f"The '{name}' parameter must be 0 or 1.")
        options[name] = spec.flag(raw)
    return options


def create_dynamic_job(
    body: Any, options: dict[str, bool], *, requested_by: str = ""
) -> tuple[list[Job], Execution | None]:
    """POST /job/dynamic: keep the definition for this boot only and start it at once."""
    payload = read_payload(body, dynamic=True)
    reader_def, writer_def = _copy(payload.reader), _copy(payload.writer)
    with transaction.atomic():
        jobs: list[Job] = []
        reader: Job | None = None
        if reader_def is not None:
            reader_def["Guid"] = reader_def.get("Guid") or new_guid()
            reader_def["JobKey"] = reader_def.get("JobKey") or reader_def["Guid"]
            if writer_def is not None:
                if not writer_def.get("Guid"):
                    # The same writer again: its guid keys its position in the target, so the
                    # change logs it applied before are not applied a second time.
                    writer_def["Guid"] = _previous_direct_writer_guid(reader_def["Guid"])
                _link_direct(reader_def, writer_def)
            _replace_dynamic(reader_def["Guid"])
            reader = _new_job(JobKind.READER, reader_def, is_dynamic=True, boot_id=agent.boot_id())
            jobs.append(reader)
        if writer_def is not None:
            writer_def["Guid"] = writer_def.get("Guid") or new_guid()
            source = reader
            if source is None and writer_def.get("SourceJobKey"):
                source = stored_jobs().filter(job_key=writer_def["SourceJobKey"]).first()
            writer_def["JobKey"] = writer_def.get("JobKey") or writer_def["Guid"]
            _replace_dynamic(writer_def["Guid"])
            writer = _new_job(
                JobKind.WRITER, writer_def, source=source, is_dynamic=True, boot_id=agent.boot_id()
            )
            jobs.append(writer)
            if reader is not None:
                reader.direct_writer = writer
                reader.save(update_fields=["direct_writer", "updated_at"])
        execution = services.start_job(
            jobs[0], options=options, requested_by=requested_by, force=True
        )
    return jobs, execution


def _previous_direct_writer_guid(reader_guid: str) -> str | None:
    return (
        Job.objects.filter(guid=reader_guid, is_dynamic=True, boot_id=agent.boot_id())
        .values_list("direct_writer__guid", flat=True)
        .first()
    )


def _replace_dynamic(guid: str) -> None:
    """Reusing a dynamic job's guid runs the new definition under it (its history carries on)."""
    existing = Job.objects.filter(guid=guid).first()
    if existing is None:
        return
    current = existing.is_dynamic and existing.boot_id == agent.boot_id()
    if not existing.is_dynamic:
        raise JobConflict(f"Guid '{guid}' belongs to a stored job; a dynamic job needs another.")
    if current and existing.status == JobStatus.RUNNING:
        raise JobConflict(f"Dynamic job '{guid}' is still running; stop it or wait.")
    doomed = [existing.pk] + ([existing.direct_writer_id] if existing.direct_writer_id else [])
    Job.objects.filter(pk__in=doomed).delete()

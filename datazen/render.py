"""DataZen JSON shapes (SyncStatus, JobInfoPackage, summary rows…) built from the shared models."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework.request import Request

from jobs import agent
from jobs.connections import mask_connection_string
from jobs.license import datazen_license
from jobs.models import ConnectionString, Execution, Job, JobKind, LogEntry

NEVER = "0001-01-01T00:00:00"
JOB_TYPE: dict[str, int] = {JobKind.READER: 1, JobKind.WRITER: 2}
# SyncStatus members a JobInfoPackage's LastStatus leaves out (as the document shows it).
RUN_FIELDS = ("LastTsPointer", "LastDelTsPointer", "ExecGuid", "ExecRunTime", "ExecStartTime",
              "ExecStopTime")  # fmt: skip


def date(value: datetime | None) -> str:
    """DataZen's dates: local time without offset, milliseconds only when there are some."""
    if value is None:
        return NEVER
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    millis = local.microsecond // 1000
    return f"{text}.{millis:03d}".rstrip("0") if millis else text


def agent_url(request: Request) -> str:
    return f"{request.scheme}://{request.get_host()}"


def version(request: Request) -> dict[str, Any]:
    major, minor, revision = (int(part) for part in settings.GATEWAY_VERSION.split("."))
    return {
        "URL": agent_url(request),
        "Running": agent.is_running(),
        "Major": major,
        "Minor": minor,
        "Revision": revision,
        "Build": 0,
        "JobsRunning": agent.jobs_running(),
    }


def license_info(text: str) -> dict[str, Any]:
    return {"DataZenLicense": datazen_license(text)}


def status(request: Request) -> dict[str, Any]:
    database = settings.DATABASES["default"]
    name = str(database.get("NAME", ""))
    if database["ENGINE"].endswith("sqlite3"):
        name = name.rsplit("/", 1)[-1]
    text = agent.license_text()
    ver = version(request)
    return {
        "URL": ver["URL"],
        "Running": ver["Running"],
        "StageDatabaseServer": database.get("HOST") or "",
        "StageDatabaseName": name,
        "StageLogin": database.get("USER") or "",
        "LicenseFile": text,
        "DataZenLicense": datazen_license(text),
        "Version": ver,
    }


def connection(conn: ConnectionString, data: str, use_count: int) -> dict[str, Any]:
    return {
        "Key": conn.key,
        "Data": data,
        "System": conn.system,
        "UseCount": use_count,
        "ConnectionType": conn.connection_type,
        "DisplayName": conn.display_name,
        "DisplayCS": conn.display_value,
        "Engine": "",
    }


def sync_status(execution: Execution, *, run_time_as_text: bool = False) -> dict[str, Any]:
    """SyncStatus; /jobs/status shows ExecRunTime as text ("5.00"), /job/history as a number."""
    run_time = round(execution.run_seconds, 2)
    return {
        "Guid": execution.job_guid,
        "ListenerType": execution.listener_type,
        "ElapsedSQLTime": execution.elapsed_sql_time,
        "ElapsedMapRecudeTime": execution.elapsed_map_reduce_time,
        "RecordCount": execution.record_count,
        "RecordsAvailable": execution.records_available,
        "DeleteCount": execution.delete_count,
        "LastTsPointer": execution.last_ts_pointer,
        "LastDelTsPointer": execution.last_del_ts_pointer,
        "ErrorMessage": execution.error_message,
        "Success": execution.success,
        "JobKey": execution.job_key,
        "ExecutionId": execution.execution_id or None,
        "PackageFile": execution.package_file,
        "CreatedOn": date(execution.created_on),
        "IsConsumerDeamonError": execution.is_consumer_daemon_error,
        "RecordsDirectWritten": execution.records_direct_written,
        "RecordsDirectDeleted": execution.records_direct_deleted,
        "ExecGuid": execution.guid,
        "ExecRunTime": f"{run_time:.2f}" if run_time_as_text else run_time,
        "ExecStartTime": date(execution.started_at),
        "ExecStopTime": date(execution.finished_at),
    }


def last_status(execution: Execution | None) -> dict[str, Any] | None:
    if execution is None:
        return None
    full = sync_status(execution)
    return {k: v for k, v in full.items() if k not in RUN_FIELDS}


def mask_password(connection_string: str) -> str:
    """A full connection string with its secrets hidden, as GET /job/dynamic shows it."""
    return mask_connection_string(connection_string)


def dynamic_definition(job: Job) -> dict[str, Any]:
    """A dynamic job as GET /job/dynamic shows it: null pointers, no password in clear.

    Dynamic jobs cannot be updated, so hiding the password breaks no edit-and-PUT round trip.
    """
    body = definition(job, empty_pointer=None)
    if isinstance(body.get("ConnectionString"), str):
        body["ConnectionString"] = mask_password(body["ConnectionString"])
    return body


def definition(job: Job, *, empty_pointer: str | None = "") -> dict[str, Any]:
    """The job as it was sent, with the values the gateway maintains laid over it."""
    body = copy.deepcopy(job.definition) if isinstance(job.definition, dict) else {}
    body["Guid"] = job.guid
    body["JobKey"] = body.get("JobKey") or job.job_key
    body["Status"] = job.status
    body["Active"] = job.active
    body["LastRunTime"] = date(job.last_run_time)
    body.setdefault("CreatedOn", date(job.created_on))
    if job.kind == JobKind.READER:
        body["LastTsPointer"] = job.last_ts_pointer or empty_pointer
        body["LastTsDelPointer"] = job.last_ts_del_pointer or empty_pointer
    else:
        body["LastExecutionId"] = job.last_execution_id or None
    body.update(computed_fields(job, body))
    return body


def computed_fields(job: Job, body: dict[str, Any]) -> dict[str, Any]:
    """The members DataZen derives from a reader's or writer's definition, in its order.

    A reader's source flags say what kind of system it reads (from its settings, else its
    connection's type); a writer shows only its type, IsDirty, IsDirect and AuditLogEnabled
    (the vendor's samples show a direct job's writer with IsDirect false: only its reader is).
    """
    json_data = _json_data(body)
    audit = bool(json_data.get("AuditLogEnabled"))
    if job.kind != JobKind.READER:
        return {
            "JobType": JOB_TYPE.get(job.kind, 0),
            "IsDirty": False,
            "IsDirect": False,
            "AuditLogEnabled": audit,
        }
    # From the definition alone (its settings, its SqlRead), as DataZen shows them: no query
    # per job, so /jobs/info stays a fixed number of queries however many jobs there are.
    flags = _source_flags(body, "")
    return {
        "IsDBSource": flags["IsDBSource"],
        "IsHttpSource": flags["IsHttpSource"],
        "IsDriveSource": flags["IsDriveSource"],
        "IsQueueingSource": flags["IsQueueingSource"],
        "JobType": JOB_TYPE[JobKind.READER],
        # Saved definitions only: the gateway keeps no unsaved edits.
        "IsDirty": False,
        "TrackLastTs": _track_last_ts(body),
        "AuditLogEnabled": audit,
        "IsDirect": job.direct_writer_id is not None or bool(json_data.get("DirectWriter")),
        "IsCDCSource": _is_cdc_source(body),
    }


def _track_last_ts(body: dict[str, Any]) -> bool:
    return bool(body.get("TrackLastTs", bool(body.get("TimestampCol"))))


def _is_cdc_source(body: dict[str, Any]) -> bool:
    return bool(body.get("IsCDCSource", bool(_json_data(body).get("CDCSettings"))))


def job_info(job: Job, latest: dict[int, Execution], writer: Job | None = None) -> dict[str, Any]:
    """JobInfoPackage for a reader (and its direct writer) or a stand-alone writer."""
    is_reader = job.kind == JobKind.READER
    direct = writer if is_reader else None
    return {
        "Guid": job.guid,
        "JobType": JOB_TYPE[job.kind],
        "JobKey": job.job_key,
        "Active": job.active,
        "JobReader": definition(job) if is_reader else None,
        "JobWriter": definition(direct) if direct else (None if is_reader else definition(job)),
        "LastStatus": last_status(latest.get(job.pk)),
        "IsDirectMode": direct is not None,
        "DirectLastStatus": last_status(latest.get(direct.pk)) if direct else None,
    }


def _json_data(body: dict[str, Any]) -> dict[str, Any]:
    json_data = body.get("JsonData")
    return json_data if isinstance(json_data, dict) else {}


def _source_flags(body: dict[str, Any], connection_type: str) -> dict[str, bool]:
    """Which kind of source a reader reads: as sent if the client said, else derived."""
    json_data = _json_data(body)
    queueing = bool(json_data.get("MessagingOptions") or json_data.get("IsQueuingSource"))
    derived = {
        "IsQueueingSource": queueing or connection_type == "Messaging",
        "IsHttpSource": bool(json_data.get("HttpSourceSettings")) or connection_type == "HTTP",
        "IsDriveSource": bool(json_data.get("DriveSourceSettings")) or connection_type == "Drive",
    }
    derived["IsDBSource"] = not any(derived.values()) and (
        connection_type == "DB" or bool(body.get("SqlRead"))
    )
    return {name: bool(body.get(name, value)) for name, value in derived.items()}


def summary_row(
    job: Job,
    writer: Job | None,
    latest: dict[int, Execution],
    connections: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    """One /jobs/summary row: a reader (with its direct writer folded in) or a lone writer."""
    body = job.definition if isinstance(job.definition, dict) else {}
    target = writer or (job if job.kind == JobKind.WRITER else None)
    target_body = target.definition if target is not None else {}
    system, connection_type = connections.get(job.connection_key, ("", ""))
    target_system = connections.get(target.connection_key, ("", ""))[0] if target else ""
    run = latest.get(job.pk)
    direct_run = latest.get(writer.pk) if writer is not None else None
    source_system = body.get("SystemName") or system
    flags = _source_flags(body, connection_type) if job.kind == JobKind.READER else {}
    return {
        "Guid": job.guid,
        "TargetGuid": writer.guid if writer is not None else None,
        "JobType": JOB_TYPE[job.kind],
        "JobKey": job.job_key,
        "Active": job.active,
        "IsDirectMode": writer is not None,
        "Path": body.get("Path") or "",
        "SourceSystemName": source_system if job.kind == JobKind.READER else "",
        "TargetSystemName": target_system or (target_body.get("TargetSystem") or ""),
        "LastExecutionId": job.last_execution_id or (run.execution_id if run else ""),
        "LastTsPointer": job.last_ts_pointer,
        "LastTsDelPointer": job.last_ts_del_pointer,
        "UpsertColumns": body.get("UpsertColumns") or "",
        "TimestampCol": body.get("TimestampCol") or "",
        "CreatedOn": date(job.created_on),
        "CronSchedule": job.cron_schedule,
        "LastRunTime": date(job.last_run_time),
        "Status": job.status,
        "IsQueueingSource": flags.get("IsQueueingSource", False),
        "IsHttpSource": flags.get("IsHttpSource", False),
        "IsDriveSource": flags.get("IsDriveSource", False),
        "IsDBSource": flags.get("IsDBSource", False),
        "TargetSystem": target_body.get("TargetSystem") or "",
        "IsConsumerDeamonError": run.is_consumer_daemon_error if run else False,
        "Success": run.success if run else False,
        "ErrorMessage": run.error_message if run else "",
        "DirectSuccess": direct_run.success if direct_run else False,
        "DirectErrorMessage": direct_run.error_message if direct_run else None,
        "TrackLastTs": _track_last_ts(body),
        "ConnectionString": body.get("ConnectionString") or "",
        "SourceSystem": source_system if job.kind == JobKind.READER else "",
        "IsCDCSource": _is_cdc_source(body),
    }


def output_message(entry: LogEntry, *, sequence: int | None = None) -> dict[str, Any]:
    """OutputMessage; /job/output numbers entries itself, /job/log uses the run's sequence."""
    return {
        "Sequence": sequence if sequence is not None else entry.sequence,
        "Guid": entry.job_guid,
        "DateAdded": date(entry.created_at),
        "Message": entry.message,
        "Level": entry.level,
        "ExecGuid": entry.execution.guid,
    }


def dynamic_execution(job_guid: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "guid": job_guid,
        "execGuid": row["guid"],
        "lastRunTime": date(row["last_run"]),
        "errors": row["errors"],
        "warnings": row["warnings"],
    }

"""The DataZen HTTP API 2.0 in OpenAPI 3: every endpoint, its query parameters and bodies.

Shapes are the vendor's PascalCase JSON as datazen/render.py builds it (camelCase only where the
document shows camelCase: /job/dynamic/executions). Kept beside the views, not in them, so the
view module stays about behaviour; gateway/openapi.py turns this into the document.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from datazen import views
from gateway.openapi import INTEGER, STRING, component, document, object_schema, ref

VENDOR = "datazen"

SETTINGS: dict[str, Any] = {
    "TITLE": "Enzo DataZen HTTP API 2.0 (data integration gateway)",
    "DESCRIPTION": (
        "The DataZen agent and jobs API as the gateway answers it. Every call needs "
        "`Authorization: SharedKey <key>`; a key is limited to the agent API, the jobs API or "
        "both, and may be read-only (GET only). Successful changes answer `200` with the body "
        '`OK`; errors are JSON `{"Error": …, "StatusCode": …}`.'
    ),
    "VERSION": "2.0",
    "TAGS": [
        {"name": "Agent API", "description": "The agent: version, status, license, connections."},
        {"name": "Jobs API", "description": "Job readers, writers, direct and dynamic jobs."},
    ],
}

NULLABLE_STRING = {"type": "string", "nullable": True}
BOOLEAN = {"type": "boolean"}
NUMBER = {"type": "number"}
DATE = {
    "type": "string",
    "description": "Local time, no offset (2022-08-16T15:05:32.94); never: 0001-01-01T00:00:00",
}


def _object(properties: dict[str, Any], *, description: str = "") -> dict[str, Any]:
    # The vendor's objects are closed: every member always present, nothing more.
    return object_schema(properties, additional=False, description=description)


def _component(name: str, schema: dict[str, Any]) -> None:
    component(VENDOR, name, schema)


_component(
    "Error",
    _object(
        {"Error": STRING, "StatusCode": INTEGER},
        description="Every failure: the message and the HTTP status code.",
    ),
)
_component(
    "Version",
    _object(
        {
            "URL": STRING,
            "Running": BOOLEAN,
            "Major": INTEGER,
            "Minor": INTEGER,
            "Revision": INTEGER,
            "Build": INTEGER,
            "JobsRunning": INTEGER,
        }
    ),
)
_component(
    "DataZenLicense",
    _object(
        {
            **{
                flag: BOOLEAN
                for flag in (
                    "AcceptSource",
                    "AcceptTarget",
                    "AllowDatabases",
                    "SchedulerAllowed",
                    "DataPipelineAllowed",
                    "DirectJobsOnly",
                    "AllowMessagingHubs",
                    "AllowDriveFiles",
                    "AllowPGPEncryption",
                )
            },
            "MaxJobs": INTEGER,
            "AllowDataCopy": BOOLEAN,
            "AllowRBAC": BOOLEAN,
            "AllowHeuristics": BOOLEAN,
            "Edition": STRING,
            "LicenseFile": STRING,
            "IsValid": BOOLEAN,
            "LicenseValidationError": NULLABLE_STRING,
            "LicenseValidationResult": INTEGER,
            "LastValidationMessage": NULLABLE_STRING,
        }
    ),
)
_component("LicenseInfo", _object({"DataZenLicense": ref(VENDOR, "DataZenLicense")}))
_component(
    "Status",
    _object(
        {
            "URL": STRING,
            "Running": BOOLEAN,
            "StageDatabaseServer": STRING,
            "StageDatabaseName": STRING,
            "StageLogin": STRING,
            "LicenseFile": STRING,
            "DataZenLicense": ref(VENDOR, "DataZenLicense"),
            "Version": ref(VENDOR, "Version"),
        }
    ),
)
_component(
    "Connection",
    _object(
        {
            "Key": STRING,
            "Data": {
                "type": "string",
                "description": "The Fernet token; the connection string with decrypt=1; "
                "empty from /connections/metadata.",
            },
            "System": STRING,
            "UseCount": INTEGER,
            "ConnectionType": STRING,
            "DisplayName": STRING,
            "DisplayCS": STRING,
            "Engine": STRING,
        }
    ),
)
# Job definitions round-trip every member a client sends; these are the ones the gateway reads
# or maintains (the document's jobReaderTemplate / jobWriterTemplate).
_JOB_COMMON = {
    "Guid": NULLABLE_STRING,
    "JobKey": NULLABLE_STRING,
    "Path": NULLABLE_STRING,
    "UpsertColumns": NULLABLE_STRING,
    "ConnectionString": {
        "type": "string",
        "nullable": True,
        "description": "The key of a connection string (inline strings only where enabled).",
    },
    "CronSchedule": {
        "type": "string",
        "nullable": True,
        "description": "Quartz cron: seconds minutes hours day-of-month month day-of-week [year]",
    },
    "Active": {"type": "boolean", "nullable": True},
    "Status": NULLABLE_STRING,
    "CreatedOn": NULLABLE_STRING,
    "LastRunTime": NULLABLE_STRING,
    "PipelineDef": {"type": "array", "nullable": True, "items": {"type": "object"}},
    "JsonData": {"type": "object", "nullable": True, "additionalProperties": True},
}
_component(
    "JobReader",
    {
        "type": "object",
        "additionalProperties": True,
        "description": "A job reader (jobReaderTemplate); unknown members are kept and given back.",
        "properties": {
            **_JOB_COMMON,
            "SqlRead": NULLABLE_STRING,
            "TimestampCol": NULLABLE_STRING,
            "LastTsPointer": NULLABLE_STRING,
            "LastTsDelPointer": NULLABLE_STRING,
            "PropagateDelete": {"type": "boolean", "nullable": True},
            "SyncStrategy": {"type": "string", "nullable": True, "example": "Full"},
            "Initialize": {"type": "boolean", "nullable": True},
            "SystemName": NULLABLE_STRING,
        },
    },
)
_component(
    "JobWriter",
    {
        "type": "object",
        "additionalProperties": True,
        "description": "A job writer (jobWriterTemplate); unknown members are kept and given back.",
        "properties": {
            **_JOB_COMMON,
            "TargetObject": NULLABLE_STRING,
            "TargetSystem": NULLABLE_STRING,
            "SourceJobKey": NULLABLE_STRING,
            "LastExecutionId": NULLABLE_STRING,
            "AutoRecreate": {"type": "boolean", "nullable": True},
            "UpsertScript": NULLABLE_STRING,
            "DeleteScript": NULLABLE_STRING,
        },
    },
)
_component(
    "JobCreation",
    {
        "type": "object",
        "additionalProperties": True,
        "description": "JobReader, JobWriter or both (a direct job).",
        "properties": {
            "JobReader": {"allOf": [ref(VENDOR, "JobReader")], "nullable": True},
            "JobWriter": {"allOf": [ref(VENDOR, "JobWriter")], "nullable": True},
        },
    },
)
_component(
    "JobDefinition",
    {
        "type": "object",
        "additionalProperties": True,
        "description": "A stored job reader or writer as it was sent, with Guid, JobKey, Status, "
        "Active, LastRunTime, CreatedOn and the pointers the gateway maintains.",
        "properties": {
            "Guid": STRING,
            "JobKey": STRING,
            "Status": STRING,
            "Active": BOOLEAN,
            "LastRunTime": DATE,
        },
        "required": ["Guid", "JobKey", "Status", "Active", "LastRunTime"],
    },
)
_SYNC_STATUS = {
    "Guid": STRING,
    "ListenerType": {"type": "string", "enum": ["reader", "writer", "flow"]},
    "ElapsedSQLTime": NUMBER,
    "ElapsedMapRecudeTime": NUMBER,
    "RecordCount": INTEGER,
    "RecordsAvailable": INTEGER,
    "DeleteCount": INTEGER,
    "LastTsPointer": NULLABLE_STRING,
    "LastDelTsPointer": NULLABLE_STRING,
    "ErrorMessage": STRING,
    "Success": BOOLEAN,
    "JobKey": STRING,
    "ExecutionId": NULLABLE_STRING,
    "PackageFile": STRING,
    "CreatedOn": DATE,
    "IsConsumerDeamonError": BOOLEAN,
    "RecordsDirectWritten": INTEGER,
    "RecordsDirectDeleted": INTEGER,
}
_RUN_FIELDS = {
    "ExecGuid": STRING,
    "ExecRunTime": {"type": "number", "description": "Seconds; -1 while it has not finished."},
    "ExecStartTime": DATE,
    "ExecStopTime": DATE,
}
_component("SyncStatus", _object({**_SYNC_STATUS, **_RUN_FIELDS}))
_component(
    "ExecutionStatus",
    _object(
        {
            "SyncStatus": _object(
                {
                    **_SYNC_STATUS,
                    **_RUN_FIELDS,
                    "ExecRunTime": {"type": "string", "description": 'Seconds as text ("5.00")'},
                }
            )
        }
    ),
)
_component(
    "LastStatus",
    {**_object(_SYNC_STATUS), "nullable": True, "description": "SyncStatus without run fields."},
)
_component(
    "JobInfoPackage",
    _object(
        {
            "Guid": STRING,
            "JobType": {"type": "integer", "enum": [1, 2], "description": "1 reader, 2 writer"},
            "JobKey": STRING,
            "Active": BOOLEAN,
            "JobReader": {"allOf": [ref(VENDOR, "JobDefinition")], "nullable": True},
            "JobWriter": {"allOf": [ref(VENDOR, "JobDefinition")], "nullable": True},
            "LastStatus": ref(VENDOR, "LastStatus"),
            "IsDirectMode": BOOLEAN,
            "DirectLastStatus": ref(VENDOR, "LastStatus"),
        }
    ),
)
_component(
    "JobSummary",
    _object(
        {
            "Guid": STRING,
            "TargetGuid": NULLABLE_STRING,
            "JobType": {"type": "integer", "enum": [1, 2]},
            "JobKey": STRING,
            "Active": BOOLEAN,
            "IsDirectMode": BOOLEAN,
            "Path": STRING,
            "SourceSystemName": STRING,
            "TargetSystemName": STRING,
            "LastExecutionId": STRING,
            "LastTsPointer": STRING,
            "LastTsDelPointer": STRING,
            "UpsertColumns": STRING,
            "TimestampCol": STRING,
            "CreatedOn": DATE,
            "CronSchedule": STRING,
            "LastRunTime": DATE,
            "Status": STRING,
            "IsQueueingSource": BOOLEAN,
            "IsHttpSource": BOOLEAN,
            "IsDriveSource": BOOLEAN,
            "IsDBSource": BOOLEAN,
            "TargetSystem": STRING,
            "IsConsumerDeamonError": BOOLEAN,
            "Success": BOOLEAN,
            "ErrorMessage": STRING,
            "DirectSuccess": BOOLEAN,
            "DirectErrorMessage": NULLABLE_STRING,
            "TrackLastTs": BOOLEAN,
            "ConnectionString": STRING,
            "SourceSystem": STRING,
            "IsCDCSource": BOOLEAN,
        }
    ),
)
_component(
    "OutputMessage",
    _object(
        {
            "Sequence": INTEGER,
            "Guid": STRING,
            "DateAdded": DATE,
            "Message": STRING,
            "Level": {"type": "integer", "enum": [0, 1, 2, 3], "description": "0 debug … 3 error"},
            "ExecGuid": STRING,
        }
    ),
)
_component(
    "DynamicExecution",
    _object(
        {
            "guid": STRING,
            "execGuid": STRING,
            "lastRunTime": DATE,
            "errors": INTEGER,
            "warnings": INTEGER,
        }
    ),
)


class SharedKeyScheme(OpenApiAuthenticationExtension):
    target_class = "datazen.auth.SharedKeyAuthentication"
    name = "SharedKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`SharedKey <key>`: a key made in the console or by "
            "`manage.py createaccesskey`.",
        }


# -- responses and parameters ---------------------------------------------------------------


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ref(VENDOR, "Error"), description=description)


UNAUTHORIZED = _error("No, malformed or unknown SharedKey.")
FORBIDDEN = _error("The key's scope or read-only flag forbids the call.")
BAD_REQUEST = _error("A parameter or the body is not valid; the message says which.")
NOT_FOUND = _error("No such job or execution.")
CONFLICT = _error("The change conflicts with what is stored (duplicate key, disabled job…).")
OK_TEXT = OpenApiResponse(
    response={"type": "string", "enum": ["OK"]}, description="Done: the body is `OK`."
)


def _json(schema: dict[str, Any], description: str) -> OpenApiResponse:
    return OpenApiResponse(response=schema, description=description)


def _list(name: str, description: str) -> OpenApiResponse:
    return _json({"type": "array", "items": ref(VENDOR, name)}, description)


def _responses(ok: Any, *errors: int) -> dict[Any, Any]:
    answers: dict[Any, Any] = {
        (200, "text/plain") if ok is OK_TEXT else 200: ok,
        401: UNAUTHORIZED,
        403: FORBIDDEN,
    }
    known = {400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT}
    answers.update({code: known[code] for code in errors})
    return answers


def _query(
    name: str,
    description: str,
    *,
    required: bool = False,
    enum: list[str] | None = None,
    pattern: str | None = None,
) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        str,
        OpenApiParameter.QUERY,
        required=required,
        description=description,
        enum=enum,
        pattern=pattern,
    )


GUID = _query("guid", "The job's guid.", required=True)
FLAG = ["0", "1"]


def _document(view: type, tag: str, **methods: dict[str, Any]) -> None:
    """Apply extend_schema per method to the view class (the views module stays unchanged);
    the description says which keys may call it."""
    scope = "agent" if tag == "Agent API" else "jobs"
    for method, kw in methods.items():
        who = f"A key with the {scope} API in its scope"
        who += "." if method == "get" else "; not a read-only key."
        if view is views.EnableJobView:
            who = f"A key with the {scope} API in its scope; not a read-only key, GET included."
        kw["description"] = f"{kw.get('description', '')} {who}".strip()
    document(view, tag, methods)


AGENT, JOBS = "Agent API", "Jobs API"

_document(
    views.VersionView,
    AGENT,
    get=dict(
        operation_id="version",
        summary="The agent's version",
        responses=_responses(_json(_object({"Version": ref(VENDOR, "Version")}), "The version.")),
    ),
)
_document(
    views.StatusView,
    AGENT,
    get=dict(
        operation_id="status",
        summary="The agent's status, stage database and license",
        responses=_responses(_json(ref(VENDOR, "Status"), "The status.")),
    ),
)
_document(
    views.LicenseInfoView,
    AGENT,
    get=dict(
        operation_id="licenseinfo_get",
        summary="The applied license",
        responses=_responses(_json(ref(VENDOR, "LicenseInfo"), "The license.")),
    ),
    post=dict(
        operation_id="licenseinfo_parse",
        summary="Read a license text (nothing is stored)",
        request={"text/plain": {"type": "string", "minLength": 1}},
        responses=_responses(_json(ref(VENDOR, "LicenseInfo"), "The parsed license."), 400),
    ),
)
_document(
    views.StartAgentView,
    AGENT,
    post=dict(
        operation_id="agent_start",
        summary="Start the agent",
        request=None,
        responses=_responses(OK_TEXT),
    ),
)
_document(
    views.StopAgentView,
    AGENT,
    post=dict(
        operation_id="agent_stop",
        summary="Stop the agent (no job starts)",
        request=None,
        responses=_responses(OK_TEXT),
    ),
)
_document(
    views.ConnectionsView,
    AGENT,
    get=dict(
        operation_id="connections",
        summary="Connection strings (read-only; encrypted unless decrypt=1 is allowed)",
        parameters=[
            _query("key", "Only the connection with this key."),
            _query("type", "Only connections of this type (DB, Drive, HTTP, Messaging…)."),
            _query(
                "decrypt", "1: the connection string in clear (keys allowed to decrypt).", enum=FLAG
            ),
        ],
        responses=_responses(_list("Connection", "The connection strings.")),
    ),
)
_document(
    views.ConnectionsMetadataView,
    AGENT,
    get=dict(
        operation_id="connections_metadata",
        summary="Connection strings without their Data",
        parameters=[_query("key", "Only the connection with this key.")],
        responses=_responses(_list("Connection", "The connections, Data empty.")),
    ),
)
_JOB_BODY = {"application/json": ref(VENDOR, "JobCreation")}
_document(
    views.JobView,
    JOBS,
    post=dict(
        operation_id="job_create",
        summary="Create a job reader, writer or direct job",
        request=_JOB_BODY,
        responses=_responses(OK_TEXT, 400, 404, 409),
    ),
    put=dict(
        operation_id="job_update",
        summary="Update a job reader, writer or direct job (Guid required)",
        request=_JOB_BODY,
        responses=_responses(OK_TEXT, 400, 404, 409),
    ),
    delete=dict(
        operation_id="job_delete",
        summary="Delete a job (its history stays)",
        parameters=[GUID],
        responses=_responses(OK_TEXT, 400, 404),
    ),
)
_document(
    views.DynamicJobView,
    JOBS,
    get=dict(
        operation_id="job_dynamic_list",
        summary="Dynamic jobs of this boot of the agent",
        parameters=[
            _query("guid", "Only this job (jobkey is then ignored)."),
            _query("jobkey", "Only jobs with this key."),
        ],
        responses=_responses(_list("JobDefinition", "The dynamic jobs (passwords masked).")),
    ),
    post=dict(
        operation_id="job_dynamic_run",
        summary="Run a job from the definition sent, at once",
        parameters=[
            _query("resync", "1: full resync of the source (readers).", enum=FLAG),
            _query("recreate", "1: truncate or recreate the target (writers).", enum=FLAG),
            _query("testrun", "1: read a single record (readers).", enum=FLAG),
        ],
        request=_JOB_BODY,
        responses=_responses(OK_TEXT, 400, 404, 409),
    ),
)
_document(
    views.DynamicExecutionsView,
    JOBS,
    get=dict(
        operation_id="job_dynamic_executions",
        summary="Executions of a dynamic job (kept across restarts)",
        parameters=[GUID],
        responses=_responses(_list("DynamicExecution", "The executions."), 400),
    ),
)
_ENABLE = dict(
    summary="Enable or disable a job",
    parameters=[GUID, _query("active", "1 enable, 0 disable.", required=True, enum=FLAG)],
    request=None,
    responses=_responses(OK_TEXT, 400, 404),
)
_document(
    views.EnableJobView,
    JOBS,
    post=dict(operation_id="job_enable", **_ENABLE),
    get=dict(operation_id="job_enable_get", description="The document shows GET too.", **_ENABLE),
)
_document(
    views.StartJobView,
    JOBS,
    post=dict(
        operation_id="job_start",
        summary="Start a job now (OK when it is already running)",
        parameters=[GUID],
        request=None,
        responses=_responses(OK_TEXT, 400, 404, 409),
    ),
)
_document(
    views.StopJobView,
    JOBS,
    post=dict(
        summary="Stop a job's pending and running executions",
        parameters=[GUID],
        request=None,
        responses=_responses(OK_TEXT, 400, 404),
    ),
)
_document(
    views.TsPointerView,
    JOBS,
    post=dict(
        operation_id="job_settspointer",
        summary="Set a reader's timestamp pointer",
        parameters=[
            GUID,
            _query("type", "read or delete.", required=True, enum=["read", "delete"]),
            _query("val", "The new pointer (empty: start over)."),
        ],
        request=None,
        responses=_responses(OK_TEXT, 400, 404),
    ),
)
_document(
    views.JobOutputView,
    JOBS,
    get=dict(
        operation_id="job_output",
        summary="The last 200 log messages of a job",
        parameters=[GUID],
        responses=_responses(_list("OutputMessage", "The messages."), 400, 404),
    ),
)
_document(
    views.JobLogView,
    JOBS,
    get=dict(
        operation_id="job_log",
        summary="The log of one execution",
        parameters=[_query("execguid", "The execution's guid.", required=True)],
        responses=_responses(_list("OutputMessage", "The execution's log."), 400, 404),
    ),
)
_document(
    views.JobHistoryView,
    JOBS,
    get=dict(
        operation_id="job_history",
        summary="A job's execution history",
        parameters=[
            GUID,
            _query("limit", "Most rows returned (default 100).", pattern="^[0-9]+$"),
            _query("listenerType", "reader (default) or writer.", enum=["reader", "writer"]),
            _query("filter", "all: include runs that found nothing.", enum=["all"]),
        ],
        responses=_responses(_list("SyncStatus", "The runs, newest first."), 400, 404),
    ),
)
_document(
    views.JobStatusView,
    JOBS,
    get=dict(
        summary="The status of one execution",
        parameters=[_query("execguid", "The execution's guid.", required=True)],
        responses=_responses(_json(ref(VENDOR, "ExecutionStatus"), "The status."), 400, 404),
    ),
)
_document(
    views.JobsInfoView,
    JOBS,
    get=dict(
        operation_id="jobs_info",
        summary="Jobs' definitions with their last status",
        parameters=[_query("guid", "Only this job.")],
        responses=_responses(_list("JobInfoPackage", "The jobs."), 400, 404),
    ),
)
_document(
    views.JobsSummaryView,
    JOBS,
    get=dict(
        summary="One row per job",
        parameters=[_query("dynamic", "1: the dynamic jobs of this boot instead.", enum=FLAG)],
        responses=_responses(_list("JobSummary", "The jobs.")),
    ),
)

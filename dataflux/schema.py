"""The SAS DataFlux Real-Time Data Job REST API in OpenAPI 3, with the SAS media types.

Each answer is listed under the media type the gateway labels it with (dataflux/media.py), and
every failure under `application/vnd.sas.error+json`. Kept beside the views, not in them;
gateway/openapi.py turns this into the document.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from dataflux import media, views
from gateway.openapi import INTEGER, STRING, component, document, object_schema, ref

VENDOR = "dataflux"

SETTINGS: dict[str, Any] = {
    "TITLE": "SAS DataFlux Real-Time Data Job REST API (data integration gateway)",
    "DESCRIPTION": (
        "Job flows: upload, read, execute with input rows and get the output rows back on the "
        "same connection; the engines that have them loaded. HTTP Basic with a console user; "
        "with DATAFLUX_ETAG on, every call but GET on the base URL sends the eTag that call "
        "returned in `If-Match`. Errors are `application/vnd.sas.error+json`."
    ),
    "VERSION": "1",
    "TAGS": [
        {"name": "Job flows", "description": "Job flow definitions, content, metadata, execute."},
        {"name": "Engines", "description": "Engines that have a job flow loaded."},
        {"name": "Server", "description": "The base URL's links and the server's information."},
    ],
}

SAS_TIME = {"type": "string", "description": "Local time like 20150106T16:16:37"}


def _component(name: str, schema: dict[str, Any]) -> None:
    component(VENDOR, name, schema)


_component(
    "Error",
    object_schema(
        {
            "version": INTEGER,
            "httpStatusCode": INTEGER,
            "errorCode": {"type": "integer", "description": "Listed in docs/dataflux.md"},
            "message": STRING,
            "details": {"type": "array", "items": STRING},
        }
    ),
)
_component(
    "Link",
    object_schema(
        {
            "href": {"type": "string", "description": "Absolute, from the request's host."},
            "method": {"type": "string", "enum": ["GET", "POST", "PUT", "DELETE"]},
            "rel": STRING,
            "type": STRING,
            "uri": {"type": "string", "description": "Relative to the base URL."},
        },
        optional=("type",),
    ),
)
LINKS = {"type": "array", "items": ref(VENDOR, "Link")}
_component("Root", object_schema({"links": LINKS, "version": INTEGER}))
_component(
    "ColumnMetadata",
    object_schema(
        {
            "name": STRING,
            "type": {
                "type": "string",
                "enum": ["string", "integer", "boolean", "date", "real", "decimal"],
            },
            "maxChars": {"type": "integer", "minimum": 0},
        },
        optional=("type", "maxChars"),
        additional=False,
    ),
)
_component(
    "DataTable",
    object_schema(
        {
            "metadata": {"type": "array", "minItems": 1, "items": ref(VENDOR, "ColumnMetadata")},
            "data": {
                "type": "array",
                "items": {"type": "array", "items": {"nullable": True}},
                "description": "Rows, each as wide as metadata.",
            },
        },
        optional=("data",),
        additional=False,
    ),
)
_component(
    "Bindings",
    {
        "type": "object",
        "description": "Name-value pairs (macros) and data tables.",
        "additionalProperties": {
            "nullable": True,
            "oneOf": [
                {"type": "string"},
                {"type": "number"},
                {"type": "boolean"},
                ref(VENDOR, "DataTable"),
            ],
        },
    },
)
_FLOW_IDS = {"version": INTEGER, "id": STRING, "name": STRING}
_component(
    "Summary",
    object_schema({**_FLOW_IDS, "description": STRING, "links": LINKS}),
)
_component(
    "Definition",
    object_schema(
        {
            **_FLOW_IDS,
            "description": STRING,
            "modifiedTimeStamp": SAS_TIME,
            "size": {"type": "integer", "description": "Bytes of the XML."},
            "links": LINKS,
        }
    ),
)
_component(
    "Metadata",
    object_schema(
        {
            **_FLOW_IDS,
            "description": STRING,
            "inputs": ref(VENDOR, "Bindings"),
            "outputs": ref(VENDOR, "Bindings"),
            "links": LINKS,
        }
    ),
)
_component(
    "ExecuteRequest",
    object_schema(
        {
            "inputs": ref(VENDOR, "Bindings"),
            **_FLOW_IDS,
            "description": STRING,
            "outputs": ref(VENDOR, "Bindings"),
            "links": LINKS,
        },
        optional=("inputs", "version", "id", "name", "description", "outputs", "links"),
        additional=False,
        description="The metadata container with the inputs; any other member is a 400.",
    ),
)
_component(
    "ExecuteResponse",
    object_schema(
        {**_FLOW_IDS, "outputs": ref(VENDOR, "Bindings"), "links": LINKS},
        optional=("outputs",),
        description="outputs is absent when the flow produces nothing.",
    ),
)
_component(
    "CreateFlow",
    object_schema(
        {
            "version": INTEGER,
            "name": {"type": "string", "minLength": 1},
            "content": {"type": "string", "minLength": 1, "description": "Base64 of the XML."},
        },
        optional=("version",),
    ),
)
_component(
    "Engine",
    object_schema(
        {
            "version": INTEGER,
            "id": INTEGER,
            "jobFlowId": STRING,
            "jobFlowName": STRING,
            "loadTime": SAS_TIME,
            "onCompletion": {"type": "string", "enum": ["keep", "unload"]},
            "maxSecondsLeft": {"type": "number"},
            "inUseBy": STRING,
            "links": LINKS,
        },
        optional=("maxSecondsLeft", "inUseBy"),
    ),
)


def _collection(item: str) -> dict[str, Any]:
    return object_schema(
        {
            "version": INTEGER,
            "name": {"type": "string", "enum": ["items"]},
            "count": INTEGER,
            "items": {"type": "array", "items": ref(VENDOR, item)},
            "links": LINKS,
        }
    )


_component("FlowCollection", _collection("Summary"))
_component("EngineCollection", _collection("Engine"))
_component(
    "ServerInfo",
    object_schema(
        {
            "version": INTEGER,
            "fullProductVersion": STRING,
            "fullVersion": STRING,
            "majorProductVersion": INTEGER,
            "minorProductVersion": INTEGER,
            "productRevision": INTEGER,
            "majorVersion": INTEGER,
            "minorVersion": INTEGER,
            "buildNumber": INTEGER,
            "authenticationConnection": STRING,
            "serverCurrentDate": SAS_TIME,
            "serverStartupDate": SAS_TIME,
            "minutesFromGmt": INTEGER,
            "databaseVersion": {"type": "array", "items": STRING},
            "libraryVersion": {"type": "array", "items": STRING},
            "repositoryInfo": {"type": "array", "items": {"type": "object"}},
            "links": LINKS,
        }
    ),
)


class BasicScheme(OpenApiAuthenticationExtension):
    target_class = "dataflux.auth.BasicAuthentication"
    name = "Basic"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "basic", "description": "A console user."}


# -- responses and parameters ---------------------------------------------------------------

_ERROR_TEXT = {
    400: "Malformed request, bad id, bad inputs or an invalid flow; the message says which.",
    401: "No or wrong credentials, or a missing, invalid or expired eTag.",
    403: "The user lacks the permission.",
    404: "No such job flow, engine or resource, or an invalid name.",
    405: "PUT on a path that is a job flow id, not a flow's content.",
    409: "A job flow of that name exists, or the engine was stopped.",
    413: "The body is over the limit.",
    503: "Every engine for the flow is busy and the queue is full.",
    504: "The run passed its time limit.",
}


def _responses(ok: dict[Any, Any], *errors: int) -> dict[Any, Any]:
    answers = dict(ok)
    for code in (400, 401, 403, 404, *errors):
        answers[(code, media.ERROR)] = OpenApiResponse(
            response=ref(VENDOR, "Error"), description=_ERROR_TEXT[code]
        )
    return answers


def _ok(name: str, media_type: str, description: str, status: int = 200) -> dict[Any, Any]:
    return {
        (status, media_type): OpenApiResponse(response=ref(VENDOR, name), description=description)
    }


NO_CONTENT = {204: OpenApiResponse(description="Done; no body.")}
FLOW_ID = OpenApiParameter(
    "ref",
    str,
    OpenApiParameter.PATH,
    description="The job flow's id: the base64 of its name (Determine_Gender.ddf → "
    "RGV0ZXJtaW5lX0dlbmRlci5kZGY=).",
)
ENGINE_ID = OpenApiParameter("engine_id", int, OpenApiParameter.PATH, description="The engine.")
FLOW_NAME = OpenApiParameter(
    "name", str, OpenApiParameter.QUERY, description="Only engines with this job flow loaded."
)
COMPLETION_BODY = {
    media.TEXT: {"type": "string", "enum": ["keep", "unload", "reuse", "terminate"]},
    media.JSON: object_schema({"onCompletion": {"type": "string", "enum": ["keep", "unload"]}}),
}
FLOWS, ENGINES, SERVER = "Job flows", "Engines", "Server"


# The Django permission each operation checks (docs/dataflux.md); the rest need a login only.
PERMISSIONS = {
    "jobFlowDefns_create": "jobs.add_job",
    "jobFlowDefn_delete": "jobs.delete_job",
    "jobFlowDefn_execute": "jobs.execute_job",
    "jobFlowDefn_content": "jobs.view_job",
    "jobFlowDefn_content_replace": "jobs.change_job",
    "jobFlowDefn_metadata": "jobs.view_job",
    "engines_delete": "jobs.delete_flowengine",
    "engines_onCompletion": "jobs.change_flowengine",
    "engine_delete": "jobs.delete_flowengine",
    "engine_onCompletion": "jobs.change_flowengine",
}


def _document(view: type, tag: str, **methods: dict[str, Any]) -> None:
    """extend_schema per method on the view class; the description says who may call it."""
    for kw in methods.values():
        needed = PERMISSIONS.get(kw["operation_id"])
        who = f"Needs the permission `{needed}`." if needed else "Any logged-in user."
        kw["description"] = f"{kw.get('description', '')} {who}".strip()
    document(view, tag, methods)


_document(
    views.RootView,
    SERVER,
    get=dict(
        operation_id="root",
        summary="Links to the resources, and an eTag",
        responses=_responses(_ok("Root", media.JSON, "The links; the ETag header has the eTag.")),
    ),
)
_document(
    views.ServerInfoView,
    SERVER,
    get=dict(
        operation_id="serverInfo",
        summary="The server's version, time and libraries",
        responses=_responses(_ok("ServerInfo", media.JSON, "The server's information.")),
    ),
)
_document(
    views.FlowsView,
    FLOWS,
    get=dict(
        operation_id="jobFlowDefns_list",
        summary="Every job flow",
        responses=_responses(_ok("FlowCollection", media.COLLECTION, "The job flows.")),
    ),
    post=dict(
        operation_id="jobFlowDefns_create",
        summary="Upload a job flow",
        request={media.JOBFLOW: ref(VENDOR, "CreateFlow"), media.JSON: ref(VENDOR, "CreateFlow")},
        responses=_responses(_ok("Definition", media.DEFINITION, "The new flow."), 409, 413),
    ),
)
_document(
    views.FlowView,
    FLOWS,
    get=dict(
        operation_id="jobFlowDefn_get",
        summary="A job flow's definition",
        parameters=[FLOW_ID],
        responses=_responses(_ok("Definition", media.DEFINITION, "The definition.")),
    ),
    delete=dict(
        operation_id="jobFlowDefn_delete",
        summary="Delete a job flow (runs in progress finish)",
        parameters=[FLOW_ID],
        responses=_responses(NO_CONTENT),
    ),
    post=dict(
        operation_id="jobFlowDefn_execute",
        summary="Execute a job flow over the inputs; the outputs come back",
        description=f"`Accept: {media.METADATA}` is required (else 400, errorCode 11003). "
        "`maxSeconds` (or header X-SAS-Max-Seconds) asks for a time limit.",
        parameters=[
            FLOW_ID,
            OpenApiParameter(
                "maxSeconds", float, OpenApiParameter.QUERY, description="Time limit in seconds."
            ),
        ],
        request={
            media.METADATA: ref(VENDOR, "ExecuteRequest"),
            media.JSON: ref(VENDOR, "ExecuteRequest"),
        },
        responses=_responses(_ok("ExecuteResponse", media.METADATA, "The outputs."), 409, 503, 504),
    ),
)
_document(
    views.FlowContentView,
    FLOWS,
    get=dict(
        operation_id="jobFlowDefn_content",
        summary="A job flow's XML",
        parameters=[FLOW_ID],
        responses=_responses(
            {(200, media.CONTENT): OpenApiResponse(response={"type": "string"}, description="XML")}
        ),
    ),
    put=dict(
        operation_id="jobFlowDefn_content_replace",
        summary="Replace a job flow's XML (the name stays)",
        parameters=[FLOW_ID],
        request={media.CONTENT: {"type": "string"}},
        responses=_responses(_ok("Definition", media.DEFINITION, "The definition."), 405, 413),
    ),
)
_document(
    views.FlowMetadataView,
    FLOWS,
    get=dict(
        operation_id="jobFlowDefn_metadata",
        summary="A job flow's inputs and outputs, read from its XML (not run)",
        parameters=[FLOW_ID],
        responses=_responses(_ok("Metadata", media.METADATA, "The metadata.")),
    ),
)
_document(
    views.FlowEnginesView,
    ENGINES,
    get=dict(
        operation_id="jobFlowDefn_engines",
        summary="The engines that have this job flow loaded",
        parameters=[FLOW_ID],
        responses=_responses(_ok("EngineCollection", media.COLLECTION, "The engines.")),
    ),
)
_document(
    views.EnginesView,
    ENGINES,
    get=dict(
        operation_id="engines_list",
        summary="Every engine, or those with a job flow loaded",
        parameters=[FLOW_NAME],
        responses=_responses(_ok("EngineCollection", media.COLLECTION, "The engines.")),
    ),
    delete=dict(
        operation_id="engines_delete",
        summary="Unload every engine (or every engine of a flow)",
        parameters=[FLOW_NAME],
        responses=_responses(NO_CONTENT),
    ),
)
_document(
    views.EnginesCompletionView,
    ENGINES,
    put=dict(
        operation_id="engines_onCompletion",
        summary="Set onCompletion on every engine (or every engine of a flow)",
        parameters=[FLOW_NAME],
        request=COMPLETION_BODY,
        responses=_responses(_ok("EngineCollection", media.COLLECTION, "The engines.")),
    ),
)
_document(
    views.EngineView,
    ENGINES,
    get=dict(
        operation_id="engine_get",
        summary="A collection with that one engine",
        parameters=[ENGINE_ID],
        responses=_responses(_ok("EngineCollection", media.COLLECTION, "The engine.")),
    ),
    delete=dict(
        operation_id="engine_delete",
        summary="Unload an engine",
        parameters=[ENGINE_ID],
        responses=_responses(NO_CONTENT),
    ),
)
_document(
    views.EngineCompletionView,
    ENGINES,
    put=dict(
        operation_id="engine_onCompletion",
        summary="Set an engine's onCompletion",
        parameters=[ENGINE_ID],
        request=COMPLETION_BODY,
        responses=_responses(_ok("EngineCollection", media.COLLECTION, "The engine.")),
    ),
)

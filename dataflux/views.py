"""DataFlux endpoints: authenticate, check the user's permission, call jobs/, render SAS JSON."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dataflux import media, render
from dataflux.auth import BasicAuthentication, ETagRequired, issue_etag
from dataflux.errors import (
    BAD_INPUT,
    ENGINE_STOPPED,
    INVALID_FLOW,
    INVALID_NAME,
    WRONG_ACCEPT,
    SasError,
    sas_exception_handler,
)
from dataflux.inputs import check_execute_body
from jobs.flows.errors import (
    EngineBusy,
    EngineStopped,
    FlowError,
    FlowGone,
    InputError,
    RunTimeout,
)
from jobs.flows.execute import execute
from jobs.flows.language.parser import parse_flow
from jobs.flows.runtime import definitions as flows
from jobs.flows.runtime import engines
from jobs.models import EngineCompletion, Job

COMPLETION_VALUES = {
    "keep": EngineCompletion.KEEP,
    "reuse": EngineCompletion.KEEP,
    "unload": EngineCompletion.UNLOAD,
    "terminate": EngineCompletion.UNLOAD,
}


class DataFluxView(APIView):
    """Base view: HTTP Basic + eTag, JSON under any SAS media type in, SAS JSON and errors out."""

    authentication_classes = [BasicAuthentication]
    permission_classes = [ETagRequired]
    parser_classes = [media.SasJSONParser, media.RawBodyParser]
    renderer_classes = [media.SasJSONRenderer]
    content_negotiation_class = media.SasNegotiation

    def get_exception_handler(self) -> Any:
        return sas_exception_handler

    def links(self) -> render.Links:
        return render.Links(self.request)

    @staticmethod
    def answer(data: Any, media_type: str, status: int = 200) -> Response:
        return Response(data, status=status, content_type=media_type)

    def require(self, permission: str) -> None:
        """The user's Django permission, checked now (not when the flow was listed)."""
        if not self.request.user.has_perm(permission):
            raise SasError(403, f"User {self.request.user.get_username()!r} lacks {permission}.")

    def flow(self, ref: str, lookup: Callable[[str], Job | None] = flows.get_flow) -> Job:
        name = flows.name_from_id(ref)
        if name is None:
            raise SasError(400, f"{ref!r} is not a job flow id (the base64 of a job flow name).")
        job = lookup(name)
        if job is None:
            raise SasError(404, f"Job flow {name!r} (id {ref}) does not exist.")
        return job

    def sub_flow(self, ref: str, suffix: str) -> Job | None:
        """The flow for `{ref}/{suffix}`; None when the whole path is itself a flow id."""
        try:
            return self.flow(ref)
        except SasError:
            whole = flows.name_from_id(f"{ref}/{suffix}")
            if whole is not None and flows.get_flow(whole) is not None:
                return None
            raise

    def body_bytes(self, limit: int) -> bytes:
        declared = int(self.request.META.get("CONTENT_LENGTH") or 0)
        if declared > limit:
            raise SasError(413, f"The request body is {declared} bytes; the limit is {limit}.")
        data = self.request.stream.read(limit + 1) if self.request.stream else b""
        if len(data) > limit:
            raise SasError(413, f"The request body is over the limit of {limit} bytes.")
        return data


class RootView(DataFluxView):
    issues_etag = True

    def get(self, request: Request) -> Response:
        response = self.answer(render.root(self.links()), media.JSON)
        response["ETag"] = issue_etag(request.user.get_username())
        return response


class ServerInfoView(DataFluxView):
    def get(self, request: Request) -> Response:
        return self.answer(render.server_info(self.links()), media.JSON)


class FlowsView(DataFluxView):
    def get(self, request: Request) -> Response:
        return self.answer(render.flows(flows.flows(), self.links()), media.COLLECTION)

    def post(self, request: Request) -> Response:
        self.require("jobs.add_job")
        body = request.data
        if not isinstance(body, dict):
            raise SasError(400, "The body must be a job flow object with 'name' and 'content'.")
        name, content = body.get("name"), body.get("content")
        if not isinstance(name, str) or not name.strip():
            raise SasError(400, "'name' must be the job flow's name (a string).")
        if not isinstance(content, str) or not content.strip():
            raise SasError(400, "'content' must be the base64-encoded job flow XML.")
        try:
            job = flows.create_flow(name, _decode_content(content))
        except flows.InvalidFlowName as exc:
            raise SasError(404, str(exc), INVALID_NAME) from None
        except flows.FlowExists as exc:
            raise SasError(409, str(exc)) from None
        except flows.FlowTooLarge as exc:
            raise SasError(413, str(exc)) from None
        except flows.BadContent as exc:
            raise SasError(400, str(exc)) from None
        return self.answer(render.definition(job, self.links()), media.DEFINITION)


class FlowView(DataFluxView):
    def get(self, request: Request, ref: str) -> Response:
        job = self.flow(ref)
        return self.answer(render.definition(job, self.links()), media.DEFINITION)

    def delete(self, request: Request, ref: str) -> Response:
        job = self.flow(ref)
        self.require("jobs.delete_job")
        flows.delete_flow(job)
        return Response(status=204)

    def post(self, request: Request, ref: str) -> Response:
        job = self.flow(ref, flows.flow_for_run)
        accept = request.META.get("HTTP_ACCEPT", "")
        if "application/vnd.sas.datamgmt.jobflow.metadata" not in accept:
            raise SasError(
                400, f"Executing a job flow needs 'Accept: {media.METADATA}'.", WRONG_ACCEPT
            )
        self.require("jobs.execute_job")
        inputs = check_execute_body(request.data)
        result = execute(job, inputs, user=request.user.get_username(), limit=_max_seconds(request))
        return self.answer(render.execution(job, result.outputs, self.links()), media.METADATA)

    def handle_exception(self, exc: Exception) -> Response:
        return super().handle_exception(_as_sas_error(exc))


class FlowContentView(DataFluxView):
    def get(self, request: Request, ref: str) -> HttpResponse:
        job = self.sub_flow(ref, "content")
        if job is None:
            return FlowView.as_view()(request._request, ref=f"{ref}/content")
        self.require("jobs.view_job")
        return HttpResponse(job.content.encode("utf-8"), content_type=media.CONTENT)

    def put(self, request: Request, ref: str) -> Response:
        job = self.sub_flow(ref, "content")
        if job is None:
            raise SasError(405, "Method PUT is not allowed on a job flow.")
        self.require("jobs.change_job")
        try:
            job = flows.replace_content(job, self.body_bytes(settings.DATAFLUX_MAX_CONTENT_BYTES))
        except flows.FlowTooLarge as exc:
            raise SasError(413, str(exc)) from None
        except flows.BadContent as exc:
            raise SasError(400, str(exc)) from None
        return self.answer(render.definition(job, self.links()), media.DEFINITION)


class FlowMetadataView(DataFluxView):
    def get(self, request: Request, ref: str) -> Response:
        job = self.sub_flow(ref, "metadata")
        if job is None:
            return FlowView.as_view()(request._request, ref=f"{ref}/metadata")
        self.require("jobs.view_job")
        try:
            spec = parse_flow(job.content)
        except FlowError as exc:
            raise _flow_error(exc) from None
        return self.answer(render.metadata(job, spec, self.links()), media.METADATA)


class FlowEnginesView(DataFluxView):
    def get(self, request: Request, ref: str) -> Response:
        job = self.sub_flow(ref, "engines")
        if job is None:
            return FlowView.as_view()(request._request, ref=f"{ref}/engines")
        infos = engines.list_engines(job.job_key)
        return self.answer(render.engines(infos, self.links(), job.job_key), media.COLLECTION)


class EnginesView(DataFluxView):
    def get(self, request: Request) -> Response:
        name = request.query_params.get("name")
        infos = engines.list_engines(name)
        return self.answer(render.engines(infos, self.links(), name), media.COLLECTION)

    def delete(self, request: Request) -> Response:
        self.require("jobs.delete_flowengine")
        for info in engines.list_engines(request.query_params.get("name")):
            engines.unload_engine(info.id)
        return Response(status=204)


class EnginesCompletionView(DataFluxView):
    def put(self, request: Request) -> Response:
        self.require("jobs.change_flowengine")
        value = _completion(request)
        name = request.query_params.get("name")
        for info in engines.list_engines(name):
            engines.set_on_completion(info.id, value)
        infos = engines.list_engines(name)
        return self.answer(render.engines(infos, self.links(), name), media.COLLECTION)


class EngineView(DataFluxView):
    def get(self, request: Request, engine_id: int) -> Response:
        info = _engine(engine_id)
        return self.answer(render.engines([info], self.links()), media.COLLECTION)

    def delete(self, request: Request, engine_id: int) -> Response:
        self.require("jobs.delete_flowengine")
        if not engines.unload_engine(_engine(engine_id).id):
            raise SasError(404, f"Engine {engine_id} does not exist.")
        return Response(status=204)


class EngineCompletionView(DataFluxView):
    def put(self, request: Request, engine_id: int) -> Response:
        self.require("jobs.change_flowengine")
        value = _completion(request)
        if not engines.set_on_completion(_engine(engine_id).id, value):
            raise SasError(404, f"Engine {engine_id} does not exist.")
        return self.answer(render.engines([_engine(engine_id)], self.links()), media.COLLECTION)


class UnknownView(DataFluxView):
    """Anything else under the base URL: authenticated first, then a SAS 404."""

    def dispatch_unknown(self, request: Request, rest: str) -> Response:
        raise SasError(404, f"There is no resource /{rest}.")

    get = post = put = delete = patch = dispatch_unknown


def _engine(engine_id: int) -> engines.EngineInfo:
    info = engines.get_engine(engine_id)
    if info is None:
        raise SasError(404, f"Engine {engine_id} does not exist.")
    return info


def _completion(request: Request) -> str:
    data: Any = request.data
    if isinstance(data, dict):
        data = data.get("onCompletion", data.get("value", ""))
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    text = str(data or "").strip().strip('"').lower()
    if text not in COMPLETION_VALUES:
        raise SasError(400, f"onCompletion must be one of {', '.join(COMPLETION_VALUES)}.")
    return COMPLETION_VALUES[text]


def _max_seconds(request: Request) -> float | None:
    raw = request.query_params.get("maxSeconds") or request.META.get("HTTP_X_SAS_MAX_SECONDS")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SasError(400, f"maxSeconds must be a number of seconds, not {raw!r}.") from None
    if value <= 0:
        raise SasError(400, "maxSeconds must be more than 0.")
    return value


def _decode_content(content: str) -> bytes:
    """The base64 content; XML sent as is (not encoded) is taken as it is, too."""
    text = content.strip()
    if text.startswith("<"):
        return text.encode("utf-8")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise SasError(400, "'content' is not valid base64.") from None


def _flow_error(exc: FlowError) -> SasError:
    where = f"line {exc.line}: " if exc.line else ""
    return SasError(
        400, f"The job flow is not valid: {where}{exc.message}", INVALID_FLOW, [str(exc)]
    )


def _as_sas_error(exc: Exception) -> Exception:
    if isinstance(exc, InputError):
        return SasError(400, str(exc), BAD_INPUT)
    if isinstance(exc, FlowError):
        return _flow_error(exc)
    if isinstance(exc, EngineBusy):
        return SasError(503, str(exc))
    if isinstance(exc, RunTimeout):
        return SasError(504, str(exc))
    if isinstance(exc, EngineStopped):
        return SasError(409, str(exc), ENGINE_STOPPED)
    if isinstance(exc, FlowGone):
        return SasError(404, str(exc))
    return exc

"""DataZen endpoints: parse the query, call one service in jobs/, render the vendor's JSON."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datazen import render
from datazen.auth import KeyScopePermission, SharedKeyAuthentication
from datazen.errors import datazen_exception_handler, error_response
from datazen.parsers import AnyTypeJSONParser, DataZenJSONParser
from jobs import agent, definitions, history
from jobs.definitions import DefinitionError
from jobs.models import AccessKey, ConnectionString


def ok() -> HttpResponse:
    """DataZen's success answer: 200 with the body `OK`."""
    return HttpResponse("OK", content_type="text/plain; charset=utf-8")


class DataZenView(APIView):
    """Base view: SharedKey auth, scope check, JSON in and out, DataZen error bodies."""

    api = "jobs"
    authentication_classes = [SharedKeyAuthentication]
    permission_classes = [KeyScopePermission]
    parser_classes = [DataZenJSONParser, AnyTypeJSONParser]

    def get_exception_handler(self) -> Any:
        return datazen_exception_handler

    def param(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    @property
    def access_key(self) -> AccessKey:
        """The caller's key; SharedKeyAuthentication guarantees there is one."""
        key = self.request.auth
        if not isinstance(key, AccessKey):
            raise NotAuthenticated("Missing Authorization header (SharedKey <key>).")
        return key

    def requester(self) -> str:
        return f"datazen:{self.access_key.name}"


# --- Agent API -------------------------------------------------------------------------------


class VersionView(DataZenView):
    api = "agent"

    def get(self, request: Request) -> Response:
        return Response({"Version": render.version(request)})


class StatusView(DataZenView):
    api = "agent"

    def get(self, request: Request) -> Response:
        return Response(render.status(request))


class LicenseInfoView(DataZenView):
    """GET: the applied license; POST: parse the license text in the body (nothing is stored)."""

    api = "agent"

    def get(self, request: Request) -> Response:
        return Response(render.license_info(agent.license_text()))

    def post(self, request: Request) -> Response:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return error_response("The license text must be UTF-8.", 400)
        if not text.strip():
            return error_response("Send the license text as the body.", 400)
        return Response(render.license_info(text))


class StartAgentView(DataZenView):
    api = "agent"

    def post(self, request: Request) -> HttpResponse:
        agent.set_running(True)
        return ok()


class StopAgentView(DataZenView):
    api = "agent"

    def post(self, request: Request) -> HttpResponse:
        agent.set_running(False)
        return ok()


class ConnectionsView(DataZenView):
    """Connection strings, read-only: Data is the Fernet token unless decrypt=1 is allowed."""

    api = "agent"
    metadata = False

    def get(self, request: Request) -> Response:
        decrypt = not self.metadata and self.param("decrypt") == "1"
        if decrypt and not self.access_key.can_decrypt:
            raise PermissionDenied("This access key is not allowed to decrypt connection strings.")
        found = ConnectionString.objects.all()
        if key := self.param("key"):
            found = found.filter(key=key)
        if not self.metadata and (kind := self.param("type")):
            found = found.filter(connection_type__iexact=kind)
        counts = history.use_counts(definitions.visible_jobs())
        return Response(
            [
                render.connection(conn, self._data(conn, decrypt), counts.get(conn.key, 0))
                for conn in found
            ]
        )

    def _data(self, conn: ConnectionString, decrypt: bool) -> str:
        if self.metadata:
            return ""
        return conn.value if decrypt else conn.encrypted_value


class ConnectionsMetadataView(ConnectionsView):
    metadata = True


# --- Jobs API --------------------------------------------------------------------------------


class JobView(DataZenView):
    def post(self, request: Request) -> HttpResponse:
        definitions.create_job(request.data)
        return ok()

    def put(self, request: Request) -> HttpResponse:
        definitions.update_job(request.data)
        return ok()

    def delete(self, request: Request) -> HttpResponse:
        definitions.delete_job(self.param("guid"))
        return ok()


class DynamicJobView(DataZenView):
    def get(self, request: Request) -> Response:
        found = definitions.dynamic_jobs()
        if guid := self.param("guid"):
            found = found.filter(guid=guid)
        elif jobkey := self.param("jobkey"):
            found = found.filter(job_key=jobkey)
        return Response([render.dynamic_definition(job) for job in found.order_by("created_on")])

    def post(self, request: Request) -> HttpResponse:
        options = definitions.run_options({k: self.param(k) for k in definitions.RUN_OPTIONS})
        definitions.create_dynamic_job(request.data, options, requested_by=self.requester())
        return ok()


class DynamicExecutionsView(DataZenView):
    def get(self, request: Request) -> Response:
        guid = self.param("guid")
        if not guid:
            raise DefinitionError("The 'guid' parameter is required.")
        rows = history.dynamic_executions(guid)
        return Response([render.dynamic_execution(guid, row) for row in rows])


class EnableJobView(DataZenView):
    """Documented as POST, shown with GET: both are accepted (GET needs a writable key too)."""

    def post(self, request: Request) -> HttpResponse:
        definitions.set_active(self.param("guid"), self.param("active"))
        return ok()

    def get(self, request: Request) -> HttpResponse:
        if self.access_key.read_only:
            raise PermissionDenied(
                "This access key is read-only: it cannot enable or disable jobs."
            )
        return self.post(request)


class StartJobView(DataZenView):
    def post(self, request: Request) -> HttpResponse:
        # Already running: still OK (the document); disabled: JobDisabled → 409.
        definitions.start(self.param("guid"), requested_by=self.requester())
        return ok()


class StopJobView(DataZenView):
    def post(self, request: Request) -> HttpResponse:
        definitions.stop(self.param("guid"))
        return ok()


class TsPointerView(DataZenView):
    def post(self, request: Request) -> HttpResponse:
        definitions.set_ts_pointer(self.param("guid"), self.param("type"), self.param("val"))
        return ok()


class JobOutputView(DataZenView):
    def get(self, request: Request) -> Response:
        guid = self.param("guid")
        guids = [guid] if guid else []
        try:
            job = definitions.get_job(guid)
        except definitions.JobNotFound:
            # Logs outlive their job (deleted, or a dynamic job of an earlier boot).
            if not history.has_output(guid or ""):
                raise
        else:
            if job.direct_writer_id is not None:
                guids.append(job.direct_writer.guid)  # type: ignore[union-attr]
        entries = history.output(guids)
        return Response([render.output_message(e, sequence=e.pk) for e in entries])


class JobLogView(DataZenView):
    def get(self, request: Request) -> Response:
        exec_guid = self.param("execguid")
        if not exec_guid:
            raise DefinitionError("The 'execguid' parameter is required.")
        if not history.executions_of(exec_guid):
            raise definitions.JobNotFound(f"No execution has guid '{exec_guid}'.")
        return Response([render.output_message(e) for e in history.execution_log(exec_guid)])


class JobHistoryView(DataZenView):
    def get(self, request: Request) -> Response:
        job = definitions.get_stored_job(self.param("guid"))
        runs = history.history(
            job,
            listener_type=self.param("listenerType"),
            limit=self.param("limit"),
            include_all=(self.param("filter") or "").lower() == "all",
        )
        return Response([render.sync_status(run) for run in runs])


class JobStatusView(DataZenView):
    def get(self, request: Request) -> Response:
        exec_guid = self.param("execguid")
        if not exec_guid:
            raise DefinitionError("The 'execguid' parameter is required.")
        runs = history.executions_of(exec_guid)
        if not runs:
            raise definitions.JobNotFound(f"No execution has guid '{exec_guid}'.")
        return Response({"SyncStatus": render.sync_status(runs[0], run_time_as_text=True)})


class JobsInfoView(DataZenView):
    def get(self, request: Request) -> Response:
        jobs = definitions.stored_jobs()
        if guid := self.param("guid"):
            job = definitions.get_stored_job(guid)
            reader = definitions.direct_reader_of(job) if job.kind == "writer" else None
            jobs = jobs.filter(pk=(reader or job).pk)
        rows, latest = history.job_listing(jobs)
        return Response([render.job_info(job, latest, writer) for job, writer in rows])


class JobsSummaryView(DataZenView):
    def get(self, request: Request) -> Response:
        dynamic = self.param("dynamic") == "1"
        jobs = definitions.dynamic_jobs() if dynamic else definitions.stored_jobs()
        rows, latest = history.job_listing(jobs)
        connections = {
            key: (system, kind)
            for key, system, kind in ConnectionString.objects.values_list(
                "key", "system", "connection_type"
            )
        }
        return Response(
            [render.summary_row(job, writer, latest, connections) for job, writer in rows]
        )

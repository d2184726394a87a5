"""HTTP services (REST and SOAP): readers (`HttpSourceSettings`) and writers
(`HttpUpsertSettings`/`HttpDeleteSettings` with `UpsertScript`/`DeleteScript`).

`connection` reads the connection format, `client` sends requests (pooling, retries, auth,
the SSRF guard), `documents` turns responses into rows, `paging` walks pages, `reader` and
`writer` are the connector's two halves. docs/http.md explains them to users.
"""

from __future__ import annotations

import json
from typing import Any

from jobs.connections import database_engine
from jobs.models import Execution, ExecutionStatus, Job, JobKind
from jobs.sync.spec import ReaderSpec, SpecError, WriterSpec, json_object
from jobs.systems.base import Connection, UnsupportedSystem
from jobs.systems.db.url import ConnectionStringError
from jobs.systems.http.client import client_for
from jobs.systems.http.connection import parse_connection
from jobs.systems.http.reader import HttpReader
from jobs.systems.http.settings import (
    DynamicParameter,
    dynamic_parameter,
    source_settings,
    unsupported_source_settings,
)
from jobs.systems.http.writer import HttpWriter

MAX_PARAMETER_ROWS = 100_000


def parameter_rows(parameter: DynamicParameter, *, job_key: str) -> list[dict[str, Any]]:
    """DynamicParameter's rows: its list, or its SQL (T-SQL, translated) on its connection."""
    if parameter.rows:
        return parameter.rows
    # On first use: sqlglot's import costs about a second in every process otherwise.
    from jobs.systems.db.tsql import catalogue_for, translate

    where = f"Job reader '{job_key}': DynamicParameter.connection"
    try:
        engine = database_engine(parameter.connection)
    except ConnectionStringError as exc:
        raise UnsupportedSystem(f"{where}: {exc}") from None
    with engine.connect() as db:
        sql = translate(
            parameter.sql,
            engine.dialect.name,
            where=f"Job reader '{job_key}' DynamicParameter",
            catalogue=catalogue_for(db),
        )
        result = db.exec_driver_sql(sql)
        names = list(result.keys())
        rows = [dict(zip(names, row, strict=True)) for row in result.fetchmany(MAX_PARAMETER_ROWS)]
    return rows


def _remember_fields(job_key: str, names: list[str]) -> None:
    """`LastKnownSourceFields`: the columns the last complete read found (the vendor's
    console shows them); only the reader's own definition changes, and only when they do."""
    job = Job.objects.filter(job_key=job_key, kind=JobKind.READER).first()
    if job is None or not isinstance(job.definition, dict):
        return
    definition = dict(job.definition)
    raw = definition.get("JsonData")
    try:
        data = json_object(raw, "JsonData")
    except SpecError:
        return
    if not isinstance(data.get("HttpSourceSettings"), dict):
        return
    if data["HttpSourceSettings"].get("LastKnownSourceFields") == names:
        return
    data = {**data, "HttpSourceSettings": {**data["HttpSourceSettings"]}}
    data["HttpSourceSettings"]["LastKnownSourceFields"] = names
    definition["JsonData"] = json.dumps(data) if isinstance(raw, str) else data
    Job.objects.filter(pk=job.pk).update(definition=definition)


def _running_execution_id(job_key: str) -> str:
    """`{{@executionid}}`: the ExecutionId of the reader's run now going on."""
    execution = (
        Execution.objects.filter(job__job_key=job_key, status=ExecutionStatus.RUNNING)
        .order_by("-pk")
        .first()
    )
    return execution.execution_id if execution is not None else ""


class HttpSystem:
    def reader(self, connection: Connection, spec: ReaderSpec) -> HttpReader:
        where = f"Job reader '{spec.job_key}'"
        if not spec.source_settings:
            raise UnsupportedSystem(
                f"{where} reads an HTTP connection but has no HttpSourceSettings."
            )
        settings = source_settings(spec.source_settings, f"{where}: HttpSourceSettings")
        unsupported = unsupported_source_settings(spec.source_settings)
        if unsupported:
            raise UnsupportedSystem(
                f"{where}: HttpSourceSettings {', '.join(unsupported)} not supported by this "
                "gateway."
            )
        client = client_for(connection.key, connection.value)
        parameters = None
        add_params = False
        max_dop = 1
        single = False
        if spec.dynamic_parameter:
            parameter = dynamic_parameter(spec.dynamic_parameter, f"{where}: DynamicParameter")
            single = parameter.single_job_per_param
            if single and spec.timestamp_col:
                raise UnsupportedSystem(
                    f"{where}: DynamicParameter.singleJobPerParam with a high-water mark "
                    f"({spec.timestamp_col}) is not supported: the job keeps one pointer, not "
                    "one per parameter row."
                )
            parameters = parameter_rows(parameter, job_key=spec.job_key)
            add_params = parameter.add_params_to_output
            max_dop = parameter.max_dop
        return HttpReader(
            client,
            spec,
            settings,
            parameters=parameters,
            add_params=add_params,
            max_dop=max_dop,
            single_job_per_param=single,
            execution_id=lambda: _running_execution_id(spec.job_key),
            on_columns=lambda names: _remember_fields(spec.job_key, names),
        )

    def writer(self, connection: Connection, spec: WriterSpec, writer_guid: str) -> HttpWriter:
        return HttpWriter(client_for(connection.key, connection.value), spec, writer_guid)

    def check(self, connection: Connection) -> str:
        """A real request to the base URL: any HTTP answer means the service is reachable."""
        try:
            settings = parse_connection(connection.value)
        except SpecError as exc:
            raise ValueError(str(exc)) from None
        client = client_for(connection.key, connection.value)
        import httpx

        request = client.http.build_request("GET", client.url(""))
        client.auth.apply(request, client.http)
        try:
            response = client.http.send(request)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"{settings.base_url}: {exc or type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            raise PermissionError(
                f"{settings.base_url} answered {response.status_code}: the credentials are refused."
            )
        return f"HTTP {response.status_code} from {settings.base_url}"

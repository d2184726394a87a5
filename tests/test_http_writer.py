"""HTTP writers against real local servers: REST and SOAP, per row and per batch, deletes,
ignored error codes, failures that resume, dead letters and their replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jobs.models import ExecutionStatus, Job
from jobs.systems.http import client as http_client
from tests.httpjobs import http_connection
from tests.syncdb import direct_job, execute, messages, run, writer_execution

pytestmark = pytest.mark.django_db

TITLES = {1: 'Say "hi"\nnow', 2: "A & B <c>", 3: "plain"}


@pytest.fixture(autouse=True)
def fresh_clients() -> Any:
    http_client.forget_clients()
    yield
    http_client.forget_clients()


@pytest.fixture
def source(sqlite_url: str) -> str:
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(
        sqlite_url,
        "INSERT INTO films VALUES (:id, :title)",
        params=[{"id": k, "title": v} for k, v in TITLES.items()],
    )
    return sqlite_url


def http_target_job(
    source: str,
    *,
    upsert: dict[str, Any],
    script: str,
    delete: dict[str, Any] | None = None,
    delete_script: str = "",
    batch: int = 1,
    errors: dict[str, Any] | None = None,
    propagate_delete: bool = False,
) -> Job:
    return direct_job(
        source,
        "api",
        sql="SELECT id, title FROM films",
        target="",
        propagate_delete=propagate_delete,
        writer={"TargetSystem": "HTTP", "UpsertScript": script, "DeleteScript": delete_script},
        options={
            "BatchCount": batch,
            "HttpUpsertSettings": upsert,
            "HttpDeleteSettings": delete or {},
            "ErrorHandling": errors or {},
        },
    )


def run_ok(job: Job) -> Any:
    execution = run(Job.objects.get(pk=job.pk))
    assert execution.status == ExecutionStatus.SUCCEEDED, (
        execution.error_message,
        messages(execution),
        messages(writer_execution(execution)) if execution.pk else None,
    )
    return execution


REST = {"IsRESTRequest": True, "HTTPURI": "/films/{{id}}", "HTTPVerb": "PUT",
        "HTTPContentType": "application/json"}  # fmt: skip
REST_BODY = '{"id": {{id}}, "title": "{{title}}"}'


def test_a_rest_writer_sends_one_json_request_per_row_escaped(httpserver: HTTPServer, source):
    # given
    httpserver.expect_request("/api/films/1", method="PUT").respond_with_data("ok")
    httpserver.expect_request("/api/films/2", method="PUT").respond_with_data("ok")
    httpserver.expect_request("/api/films/3", method="PUT").respond_with_data("ok")
    http_connection(httpserver.url_for("/api"))
    job = http_target_job(source, upsert=REST, script=REST_BODY)
    # when
    execution = run_ok(job)
    # then every row arrived as valid JSON with its exact text
    got = {json.loads(r.data)["id"]: json.loads(r.data)["title"] for r, _ in httpserver.log}
    assert got == TITLES
    assert writer_execution(execution).record_count == 3


def test_a_rest_writer_sends_batches_with_a_repeated_section(httpserver, source) -> None:
    httpserver.expect_request("/api/films", method="POST").respond_with_data("ok")
    http_connection(httpserver.url_for("/api"))
    job = http_target_job(
        source,
        upsert={**REST, "HTTPURI": "/films", "HTTPVerb": "POST"},
        script='{"count": {{@count}}, "films": ['
        '{{#rows}}{"id": {{id}}, "title": "{{title}}"}{{/rows}}]}',
        batch=2,
    )
    run_ok(job)
    bodies = [json.loads(r.data) for r, _ in httpserver.log]
    assert [b["count"] for b in bodies] == [2, 1]
    assert {f["id"]: f["title"] for b in bodies for f in b["films"]} == TITLES


SOAP = {"IsRESTRequest": False, "HTTPURI": "/ws/FilmService", "HTTPVerb": "POST",
        "HTTPContentType": "text/xml"}  # fmt: skip
SOAP_BODY = """<?xml version="1.0" encoding="utf-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
<soapenv:Body><saveFilm><id>{{id}}</id><title>{{title}}</title></saveFilm></soapenv:Body>
</soapenv:Envelope>"""


def test_a_soap_writer_xml_escapes_each_value(httpserver: HTTPServer, source) -> None:
    httpserver.expect_request("/api/ws/FilmService", method="POST").respond_with_data("<ok/>")
    http_connection(httpserver.url_for("/api"))
    run_ok(http_target_job(source, upsert=SOAP, script=SOAP_BODY))
    got = {}
    for request, _ in httpserver.log:
        assert request.headers["Content-Type"] == "text/xml"
        envelope = etree.fromstring(request.data)
        got[int(envelope.findtext(".//id"))] = envelope.findtext(".//title")
    assert got == TITLES


def test_deleted_rows_are_sent_with_the_delete_script(httpserver, source) -> None:
    httpserver.expect_request("/api/films/1", method="PUT").respond_with_data("ok")
    httpserver.expect_request("/api/films/2", method="PUT").respond_with_data("ok")
    httpserver.expect_request("/api/films/3", method="PUT").respond_with_data("ok")
    httpserver.expect_request("/api/films/2", method="DELETE").respond_with_data("gone")
    http_connection(httpserver.url_for("/api"))
    job = http_target_job(source, upsert=REST, script=REST_BODY, propagate_delete=True,
                          delete={"HTTPURI": "/films/{{id}}", "HTTPVerb": "DELETE"})  # fmt: skip
    run_ok(job)
    execute(source, "DELETE FROM films WHERE id = 2")
    execution = run_ok(job)
    assert [(r.method, r.path) for r, _ in httpserver.log][-1] == ("DELETE", "/api/films/2")
    assert writer_execution(execution).delete_count == 1
    assert len(httpserver.log) == 4


def test_ignored_error_codes_count_as_delivered(httpserver: HTTPServer, source) -> None:
    httpserver.expect_request("/api/films/2").respond_with_data("exists", status=409)
    httpserver.expect_request("/api/films/1").respond_with_data("ok")
    httpserver.expect_request("/api/films/3").respond_with_data("ok")
    http_connection(httpserver.url_for("/api"))
    job = http_target_job(source, upsert={**REST, "IgnoreBatchErrorCodes": "409"}, script=REST_BODY)
    execution = run_ok(job)
    assert any("1 rows answered an ignored error code" in m
               for m in messages(writer_execution(execution)))  # fmt: skip


def test_a_failed_row_fails_the_run_and_the_next_run_resumes_there(httpserver, source) -> None:
    # given a service that fails film 2 for a while
    down = {"film2": True}
    seen: list[int] = []

    def handler(request: Request) -> Response:
        film = int(request.path.rsplit("/", 1)[1])
        if film == 2 and down["film2"]:
            return Response("validation failed", status=400)
        seen.append(film)
        return Response("ok")

    httpserver.expect_request("/api/films/1").respond_with_handler(handler)
    httpserver.expect_request("/api/films/2").respond_with_handler(handler)
    httpserver.expect_request("/api/films/3").respond_with_handler(handler)
    http_connection(httpserver.url_for("/api"), maxRetries=0)
    job = http_target_job(source, upsert=REST, script=REST_BODY)
    # when
    failed = run(Job.objects.get(pk=job.pk))
    # then
    assert failed.status == ExecutionStatus.FAILED
    assert "answered 400: validation failed" in failed.error_message
    assert seen == [1]
    # when the service heals and the writer runs again
    down["film2"] = False
    writer = Job.objects.get(pk=job.direct_writer_id)
    resumed = run_ok(writer)
    # then it resumed at film 2, and says so: film 1 was not sent twice
    assert seen == [1, 2, 3]
    assert any(
        m.startswith(f"Resuming change log {failed.execution_id} after the rows already delivered")
        for m in messages(resumed)
    )


def test_failing_rows_go_to_a_dead_letter_file_that_can_be_replayed(httpserver, source) -> None:
    # given
    down = {"film2": True}

    def handler(request: Request) -> Response:
        if request.path.endswith("/2") and down["film2"]:
            return Response("service down", status=500)
        return Response("ok")

    for film in TITLES:
        httpserver.expect_request(f"/api/films/{film}").respond_with_handler(handler)
    http_connection(httpserver.url_for("/api"), maxRetries=0)
    job = http_target_job(
        source,
        upsert=REST,
        script=REST_BODY,
        errors={"ActionOnFail": 2, "RetryCount": 1, "RetryTTLSeconds": 0,
                "DeadLetterQueuePath": "C:\\Tmp\\dlq"},
    )  # fmt: skip
    # when
    execution = run_ok(job)
    # then the run succeeded, saying where the row went
    dead = Path(settings.DATA_DIR) / "drive_c" / "Tmp" / "dlq" / f"__{job.job_key}.jsonl"
    (entry,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert entry["uri"] == "/films/2" and json.loads(entry["body"])["title"] == TITLES[2]
    assert entry["status"] == 500
    assert writer_execution(execution).record_count == 2
    assert any("1 rows written to the dead-letter file" in m
               for m in messages(writer_execution(execution)))  # fmt: skip
    attempts = [r.path for r, _ in httpserver.log].count("/api/films/2")
    assert attempts == 2  # RetryCount 1
    # and a second run sends nothing again: the position moved past the dead letter
    run_ok(job)
    assert [r.path for r, _ in httpserver.log].count("/api/films/2") == 2
    # when the service is back and the file is replayed
    down["film2"] = False
    call_command("replaydeadletters", str(dead))
    # then
    assert [r.path for r, _ in httpserver.log].count("/api/films/2") == 3
    assert dead.read_text() == ""


def test_a_batch_body_without_a_section_on_xml_is_refused_clearly(httpserver, source) -> None:
    http_connection(httpserver.url_for("/api"))
    job = http_target_job(source, upsert=SOAP, script=SOAP_BODY, batch=2)
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert "{{#rows}}" in execution.error_message


def test_a_soap_writer_sends_batches_with_a_repeated_section(httpserver, source) -> None:
    httpserver.expect_request("/api/ws/FilmService", method="POST").respond_with_data("<ok/>")
    http_connection(httpserver.url_for("/api"))
    script = SOAP_BODY.replace(
        "<saveFilm><id>{{id}}</id><title>{{title}}</title></saveFilm>",
        "<saveFilms>{{#rows}}<film><id>{{id}}</id><title>{{title}}</title></film>{{/rows}}"
        "</saveFilms>",
    )
    run_ok(http_target_job(source, upsert=SOAP, script=script, batch=2))
    sizes, got = [], {}
    for request, _ in httpserver.log:
        films = etree.fromstring(request.data).findall(".//film")
        sizes.append(len(films))
        got.update({int(f.findtext("id")): f.findtext("title") for f in films})
    assert sizes == [2, 1]
    assert got == TITLES


def test_batch_finalization_settings_are_refused_by_name(httpserver: HTTPServer, source) -> None:
    http_connection(httpserver.url_for("/api"))
    job = http_target_job(
        source, upsert={**REST, "BatchFinalizationSettings": {"HTTPURI": "/commit"}},
        script=REST_BODY,
    )  # fmt: skip
    execution = run(Job.objects.get(pk=job.pk))
    assert execution.status == ExecutionStatus.FAILED
    assert "HttpUpsertSettings.BatchFinalizationSettings (a request after the batches) not " in (
        execution.error_message
    )
    assert httpserver.log == []

"""HTTP readers against real local servers: REST and SOAP documents, paging, high-water mark,
auth, retries, timeouts, bad answers and the SSRF guard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jobs.models import ExecutionStatus, Job
from jobs.sync import run as sync_run
from jobs.sync.changelog import ChangeLogReader
from jobs.systems.http import client as http_client
from jobs.systems.http import reader as http_reader
from tests.httpjobs import http_connection, http_source_job
from tests.syncdb import messages, rows, run

pytestmark = pytest.mark.django_db

ITEMS = [{"id": i, "name": f"item {i}", "meta": {"color": "red" if i % 2 else "blue"}}
         for i in range(1, 251)]  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_clients() -> Any:
    # Each test's connection gets its own pooled client (servers and ports change).
    http_client.forget_clients()
    yield
    http_client.forget_clients()


@pytest.fixture
def target(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'target.sqlite3'}"


def run_ok(job: Job) -> Any:
    execution = run(Job.objects.get(pk=job.pk))
    assert execution.status == ExecutionStatus.SUCCEEDED, (
        execution.error_message,
        messages(execution),
    )
    return execution


def landed(target: str) -> list[tuple]:
    """The target's rows; none when the table was never made (or made and left empty)."""
    try:
        return rows(target, "items")
    except Exception as exc:
        assert "no such table" in str(exc)
        return []


def expected(items: list[dict[str, Any]]) -> list[tuple]:
    return [(i["id"], i["name"], i["meta"]["color"]) for i in items]


# -- REST and paging ---------------------------------------------------------------------------
def test_a_rest_reader_flattens_nested_objects_into_columns(httpserver: HTTPServer, target):
    # given
    httpserver.expect_request("/api/items").respond_with_json({"data": {"items": ITEMS[:3]}})
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(target, {"HTTPURI": "/items", "PayloadTxSettings": {
        "TxDocumentRootPath": "$.data.items"}})  # fmt: skip
    # when
    run_ok(job)
    # then
    assert rows(target, "items") == expected(ITEMS[:3])
    settings = Job.objects.get(pk=job.pk).definition["JsonData"]["HttpSourceSettings"]
    assert settings["LastKnownSourceFields"] == ["id", "name", "meta_color"]


def _paged(request: Request) -> Response:
    args = request.args
    if "offset" in args:
        start, size = int(args["offset"]), int(args["limit"])
        return Response(json.dumps(ITEMS[start : start + size]), content_type="application/json")
    if "page" in args:
        page, size = int(args["page"]), int(args["limit"])
        chunk = ITEMS[(page - 1) * size : page * size]
        return Response(json.dumps(chunk), content_type="application/json")
    start = int(args.get("from", args.get("continuationToken", "0")) or 0)
    chunk = ITEMS[start : start + 100]
    following = start + 100 if start + 100 < len(ITEMS) else None
    if request.path.endswith("/linked"):
        headers = {}
        if following is not None:
            headers["Link"] = f'</api/linked?from={following}>; rel="next"'
        return Response(json.dumps(chunk), content_type="application/json", headers=headers)
    body: dict[str, Any] = {"value": chunk}
    if request.path.endswith("/next"):
        body["next"] = f"/api/next?from={following}" if following is not None else None
    else:
        body["token"] = str(following) if following is not None else ""
    return Response(json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(
    ("uri", "paging", "root"),
    [
        ("/items", {"PagingStrategy": 1, "OffsetStrategy": {"PageSize": 100}}, "$"),
        ("/items", {"PagingStrategy": "page", "OffsetStrategy": {"PageSize": 100}}, "$"),
        ("/next", {"PagingStrategy": 3, "OffsetStrategy": {"NextLinkPath": "$.next"}}, "value"),
        ("/linked", {"PagingStrategy": "linkheader"}, "$"),
        ("/token", {"PagingStrategy": 5, "OffsetStrategy": {"TokenPath": "token"}}, "$.value"),
    ],
    ids=["offset", "page", "nextlink", "linkheader", "token"],
)
def test_every_paging_strategy_reads_every_page_once(
    httpserver: HTTPServer, target, uri: str, paging: dict[str, Any], root: str
) -> None:
    # given 250 rows served 100 at a time
    httpserver.expect_request(uri.replace("/", "/api/", 1)).respond_with_handler(_paged)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(
        target,
        {"HTTPURI": uri, "PayloadTxSettings": {"TxDocumentRootPath": root}, **paging},
    )
    # when
    execution = run_ok(job)
    # then
    assert rows(target, "items") == expected(ITEMS)
    assert execution.records_available == 250
    assert len(httpserver.log) == 3


def test_paging_values_go_into_body_placeholders_when_the_payload_has_them(
    httpserver: HTTPServer, target
) -> None:
    # given a POST API that takes its paging in the JSON body
    def handler(request: Request) -> Response:
        body = json.loads(request.data)
        chunk = ITEMS[body["skip"] : body["skip"] + body["take"]]
        return Response(json.dumps({"rows": chunk}), content_type="application/json")

    httpserver.expect_request("/api/search", method="POST").respond_with_handler(handler)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(target, {
        "HTTPURI": "/search", "HTTPVerb": "POST", "HTTPContentType": "application/json",
        "HTTPPayload": '{"skip": {{@offset}}, "take": {{@limit}}}',
        "PagingStrategy": "offset", "OffsetStrategy": {"PageSize": 120},
        "PayloadTxSettings": {"TxDocumentRootPath": "rows"},
    })  # fmt: skip
    # when
    run_ok(job)
    # then
    assert rows(target, "items") == expected(ITEMS)
    assert [json.loads(r.data)["skip"] for r, _ in httpserver.log] == [0, 120, 240]
    assert all(not r.args for r, _ in httpserver.log)


def test_a_service_that_ignores_paging_is_stopped_by_the_loop_guard(httpserver, target):
    # given a service that answers every page with the same full page
    httpserver.expect_request("/api/items").respond_with_json(ITEMS[:100])
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(
        target, {"HTTPURI": "/items", "PagingStrategy": 1, "OffsetStrategy": {"PageSize": 100}}
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert "same page twice" in execution.error_message
    assert landed(target) == []


def test_a_page_limit_stops_a_run_that_would_read_more(httpserver: HTTPServer, target) -> None:
    httpserver.expect_request("/api/items").respond_with_handler(_paged)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(target, {"HTTPURI": "/items", "PagingStrategy": 1,
                                   "OffsetStrategy": {"PageSize": 100, "MaxPages": 2}})  # fmt: skip
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert "more than 2 pages" in execution.error_message


# -- high-water mark ---------------------------------------------------------------------------
def test_the_high_water_mark_moves_across_three_runs_without_losing_or_doubling_rows(
    httpserver: HTTPServer, target
) -> None:
    # given a service filtering on ?since= (inclusive, as the strategy expects)
    data = [
        {"id": 1, "name": "a", "updated": "2024-01-01T10:00:00"},
        {"id": 2, "name": "b", "updated": "2024-01-02T10:00:00"},
    ]

    def handler(request: Request) -> Response:
        since = request.args.get("since", "")
        chosen = [row for row in data if row["updated"] >= since]
        return Response(json.dumps(chosen), content_type="application/json")

    httpserver.expect_request("/api/changes").respond_with_handler(handler)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(
        target,
        {"HTTPURI": "/changes", "HighWaterMark": "updated", "HighWaterMarkParam": "since"},
        propagate_delete=False,
    )
    # when: run 1 reads all
    first = run_ok(job)
    # and a row arrives at exactly the mark, another later
    data.append({"id": 3, "name": "c", "updated": "2024-01-02T10:00:00"})
    data.append({"id": 4, "name": "d", "updated": "2024-01-03T09:00:00"})
    second = run_ok(job)
    # and nothing new
    third = run_ok(job)
    # then
    assert rows(target, "items") == [(r["id"], r["name"], r["updated"]) for r in data]
    assert [first.record_count, second.record_count, third.record_count] == [2, 2, 0]
    sent = [r.args.get("since") for r, _ in httpserver.log]
    assert sent == [None, "2024-01-02T10:00:00", "2024-01-03T09:00:00"]
    assert Job.objects.get(pk=job.pk).last_ts_pointer == "2024-01-03T09:00:00"


def test_the_high_water_mark_stays_when_a_run_fails(httpserver: HTTPServer, target) -> None:
    calls = {"n": 0}

    def handler(request: Request) -> Response:
        calls["n"] += 1
        if calls["n"] == 2:
            return Response("<<garbage", content_type="application/json")
        return Response(
            json.dumps([{"id": 1, "name": "a", "updated": "2024-05-01"}]),
            content_type="application/json",
        )

    httpserver.expect_request("/api/changes").respond_with_handler(handler)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(target, {"HTTPURI": "/changes?since={{@highwatermark}}",
                                   "HighWaterMark": "updated"})  # fmt: skip
    run_ok(job)
    failed = run(Job.objects.get(pk=job.pk))
    assert failed.status == ExecutionStatus.FAILED
    assert "not valid JSON" in failed.error_message
    assert Job.objects.get(pk=job.pk).last_ts_pointer == "2024-05-01"
    run_ok(job)
    assert [r.args.get("since") for r, _ in httpserver.log] == ["", "2024-05-01", "2024-05-01"]


# -- SOAP --------------------------------------------------------------------------------------
SOAP = """<?xml version="1.0"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">
<S:Body><ns2:listResponse xmlns:ns2="urn:x">{}</ns2:listResponse></S:Body></S:Envelope>"""


def test_a_soap_reader_posts_its_envelope_and_reads_return_elements(httpserver, target):
    # given
    body = "".join(
        f'<return kind="k{i}"><id>{i}</id><name>n &amp; {i}</name></return>' for i in (1, 2)
    )
    httpserver.expect_request("/ws/Service", method="POST").respond_with_data(
        SOAP.format(body), content_type="text/xml"
    )
    http_connection(httpserver.url_for("/ws"))
    job = http_source_job(target, {
        "IsRESTRequest": False, "HTTPURI": "/Service", "HTTPVerb": "POST",
        "HTTPContentType": "text/xml",
        "HTTPHeaders": '[{"Key":"SOAPAction","Value":"list"}]',
        "HTTPPayload": "<Envelope><Body><list><run>{{@executionid}}</run></list></Body></Envelope>",
        "PayloadTxSettings": {"TxDocumentRootPath": "//return", "TxDocumentMsgContentCol": "_raw"},
        "SelectedColumns": "id,name",
    })  # fmt: skip
    # when
    execution = run_ok(job)
    # then
    assert [r[:2] for r in rows(target, "items")] == [("1", "n & 1"), ("2", "n & 2")]
    request = httpserver.log[0][0]
    assert request.headers["SOAPAction"] == "list"
    assert request.headers["Content-Type"] == "text/xml"
    assert f"<run>{execution.execution_id}</run>" in request.get_data(as_text=True)


def test_a_garbage_answer_fails_the_run_clearly_and_applies_nothing(httpserver, target):
    httpserver.expect_request("/ws/Service").respond_with_data(
        "<html><body>Gateway error", content_type="text/html"
    )
    http_connection(httpserver.url_for("/ws"))
    rows_at = {"TxDocumentRootPath": "//return"}
    job = http_source_job(
        target, {"IsRESTRequest": False, "HTTPURI": "/Service", "PayloadTxSettings": rows_at}
    )
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert "is not well-formed XML" in execution.error_message
    assert "<html><body>Gateway error" in execution.error_message
    assert landed(target) == []
    assert not Job.objects.get(pk=job.pk).last_execution_id


FAULT = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    "<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{text}</faultstring>"
    "</soap:Fault></soap:Body></soap:Envelope>"
)


def test_a_soap_fault_answered_with_200_fails_the_run_instead_of_reading_no_rows(
    httpserver, target
) -> None:
    # given a first run that landed rows, then a service answering a fault with 200 OK
    answers = iter([SOAP.format("<return><id>1</id></return>")])
    httpserver.expect_request("/ws/Service").respond_with_handler(
        lambda r: Response(
            next(answers, None) or FAULT.format(code="Server", text="Session expired"),
            content_type="text/xml",
        )
    )
    http_connection(httpserver.url_for("/ws"))
    settings = {"IsRESTRequest": False, "HTTPURI": "/Service",
                "PayloadTxSettings": {"TxDocumentRootPath": "//return"}}  # fmt: skip
    job = http_source_job(target, settings)
    run_ok(job)
    # when
    execution = run(Job.objects.get(pk=job.pk))
    # then: a fault is not an empty answer, so nothing is deleted
    assert execution.status == ExecutionStatus.FAILED
    assert "is a SOAP fault: soap:Server: Session expired" in execution.error_message
    assert rows(target, "items") == [("1",)]


def test_a_soap_fault_blaming_the_request_is_not_retried(httpserver, target) -> None:
    httpserver.expect_request("/ws/Service").respond_with_data(
        FAULT.format(code="Client", text="Unknown operation"), status=500, content_type="text/xml"
    )
    http_connection(httpserver.url_for("/ws"), maxRetries=3)
    settings = {"IsRESTRequest": False, "HTTPURI": "/Service",
                "PayloadTxSettings": {"TxDocumentRootPath": "//return"}}  # fmt: skip
    execution = run(http_source_job(target, settings))
    assert execution.status == ExecutionStatus.FAILED
    assert "answered 500: a SOAP fault: soap:Client: Unknown operation" in execution.error_message
    assert len(httpserver.log) == 1


def test_columns_are_those_of_every_page_and_typed_by_every_value(httpserver, target) -> None:
    # given pages whose later ones bring a new field and decimals where integers were
    pages = [
        [{"id": 1, "name": "a", "price": 3}],
        [{"id": 2, "name": "b", "price": 4.5}],
        [{"id": 3, "price": 5, "stock": 7}],
    ]

    def paged(request: Request) -> Response:
        at = int(request.args["offset"])
        return Response(json.dumps(pages[at] if at < len(pages) else []),
                        content_type="application/json")  # fmt: skip

    httpserver.expect_request("/api/items").respond_with_handler(paged)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(target, {"HTTPURI": "/items", "PagingStrategy": "offset",
                                   "OffsetStrategy": {"PageSize": 1}})  # fmt: skip
    # when
    run_ok(job)
    # then
    assert rows(target, "items") == [(1, "a", 3.0, None), (2, "b", 4.5, None), (3, None, 5.0, 7)]
    settings = Job.objects.get(pk=job.pk).definition["JsonData"]["HttpSourceSettings"]
    assert settings["LastKnownSourceFields"] == ["id", "name", "price", "stock"]


def test_pages_past_the_spools_memory_are_read_back_from_its_file(
    httpserver, target, monkeypatch
) -> None:
    # given a spool that keeps no page in memory, a page of rows with the same fields (kept
    # as value tuples) and one whose rows differ (kept as dicts)
    monkeypatch.setattr(http_reader, "SPOOL_MEMORY", 0)
    pages = [
        [{"id": 1, "name": "a", "price": 3}, {"id": 2, "name": "b", "price": 4.5}],
        [{"id": 3, "price": 5, "stock": 7}, {"id": 4, "name": "d"}],
    ]

    def paged(request: Request) -> Response:
        at = int(request.args["offset"]) // 2
        return Response(json.dumps(pages[at] if at < len(pages) else []),
                        content_type="application/json")  # fmt: skip

    httpserver.expect_request("/api/items").respond_with_handler(paged)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(target, {"HTTPURI": "/items", "PagingStrategy": "offset",
                                   "OffsetStrategy": {"PageSize": 2}})  # fmt: skip
    # when
    run_ok(job)
    # then every row arrives as the service sent it
    assert rows(target, "items") == [
        (1, "a", 3.0, None), (2, "b", 4.5, None), (3, None, 5.0, 7), (4, "d", None, None),
    ]  # fmt: skip


def test_a_runs_pages_go_down_the_pipeline_in_batches_of_the_batch_size(
    httpserver, target, monkeypatch
) -> None:
    # given 250 rows served 100 at a time, and batches of 120 rows
    monkeypatch.setattr(sync_run, "READ_BATCH_ROWS", 120)
    httpserver.expect_request("/api/items").respond_with_handler(_paged)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(target, {"HTTPURI": "/items", "PagingStrategy": "offset",
                                   "OffsetStrategy": {"PageSize": 100}},
                          json_data={"KeepChangedLogFiles": True})  # fmt: skip
    # when
    execution = run_ok(job)
    # then the change log (and so the writer) has a frame per batch, not one per page
    with ChangeLogReader(Path(execution.package_file)) as log:
        assert [len(frame.rows) for frame in log.frames()] == [120, 120, 10]
    assert rows(target, "items") == expected(ITEMS)


# -- auth, retries, timeouts ---------------------------------------------------------------------
def test_oauth2_tokens_are_cached_until_expiry_and_renewed_after(httpserver, target, monkeypatch):
    # given a token endpoint whose tokens live 31 s (1 s after the gateway's 30 s margin)
    issued: list[str] = []

    def token(request: Request) -> Response:
        assert request.authorization and request.authorization.username == "app"
        assert request.form["grant_type"] == "client_credentials"
        issued.append(f"t{len(issued) + 1}")
        return Response(json.dumps({"access_token": issued[-1], "expires_in": 31}),
                        content_type="application/json")  # fmt: skip

    def data(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {issued[-1]}":
            return Response("expired", status=401)
        return Response(json.dumps(ITEMS[:2]), content_type="application/json")

    httpserver.expect_request("/oauth/token", method="POST").respond_with_handler(token)
    httpserver.expect_request("/api/items").respond_with_handler(data)
    http_connection(httpserver.url_for("/api"), authType="oauth2", clientId="app",
                    clientSecret="s3cret", tokenUrl=httpserver.url_for("/oauth/token"))  # fmt: skip
    job = http_source_job(target, {"HTTPURI": "/items"})
    # when two runs go within the token's life, then one after it
    run_ok(job)
    run_ok(job)
    clock = time.monotonic() + 2
    monkeypatch.setattr("jobs.systems.http.auth.time.monotonic", lambda: clock)
    run_ok(job)
    # then
    assert issued == ["t1", "t2"]


def test_a_refused_token_is_renewed_once(httpserver: HTTPServer, target) -> None:
    issued: list[str] = []
    httpserver.expect_request("/oauth/token").respond_with_handler(
        lambda r: (
            issued.append("x")
            or Response(  # type: ignore[func-returns-value]
                json.dumps({"access_token": f"t{len(issued)}", "expires_in": 3600}),
                content_type="application/json",
            )
        )
    )
    answers = iter([Response("revoked", status=401)])
    httpserver.expect_request("/api/items").respond_with_handler(
        lambda r: next(answers, None) or Response(json.dumps(ITEMS[:1]),
                                                  content_type="application/json")
    )  # fmt: skip
    http_connection(httpserver.url_for("/api"), authType="oauth2", clientId="a",
                    clientSecret="b", tokenUrl=httpserver.url_for("/oauth/token"))  # fmt: skip
    run_ok(http_source_job(target, {"HTTPURI": "/items"}))
    assert len(issued) == 2


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_are_retried_after_retry_after(httpserver, target, status: int) -> None:
    answers = iter([Response("busy", status=status, headers={"Retry-After": "1"})])
    httpserver.expect_request("/api/items").respond_with_handler(
        lambda r: (
            next(answers, None) or Response(json.dumps(ITEMS[:2]), content_type="application/json")
        )
    )
    http_connection(httpserver.url_for("/api"), maxRetries=2)
    job = http_source_job(target, {"HTTPURI": "/items"})
    started = time.monotonic()
    run_ok(job)
    assert time.monotonic() - started >= 1.0
    assert len(httpserver.log) == 2
    assert rows(target, "items") == expected(ITEMS[:2])


def test_retries_give_up_with_the_status_and_the_body(httpserver, target, monkeypatch) -> None:
    monkeypatch.setattr(http_client, "BACKOFF_BASE_SECONDS", 0.01)
    httpserver.expect_request("/api/items").respond_with_data("down for upgrade", status=502)
    http_connection(httpserver.url_for("/api"), maxRetries=2)
    execution = run(http_source_job(target, {"HTTPURI": "/items"}))
    assert execution.status == ExecutionStatus.FAILED
    assert "answered 502 after 3 attempts: down for upgrade" in execution.error_message


def test_a_slow_service_fails_the_run_with_the_timeout(httpserver, target) -> None:
    def slow(request: Request) -> Response:
        time.sleep(2)
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/api/items").respond_with_handler(slow)
    http_connection(httpserver.url_for("/api"), timeoutSeconds=0.5)
    execution = run(http_source_job(target, {"HTTPURI": "/items"}))
    assert execution.status == ExecutionStatus.FAILED
    assert "no answer within 0.5 s (timeoutSeconds)" in execution.error_message


@pytest.mark.parametrize(
    ("auth", "header"),
    [
        ({"authType": "basic", "username": "u", "password": "p"}, "Basic dTpw"),
        ({"authType": "bearer", "token": "abc"}, "Bearer abc"),
    ],
)
def test_basic_and_bearer_credentials_are_sent(httpserver, target, auth, header) -> None:
    httpserver.expect_request("/api/items", headers={"Authorization": header}).respond_with_json(
        ITEMS[:1]
    )
    http_connection(httpserver.url_for("/api"), **auth)
    run_ok(http_source_job(target, {"HTTPURI": "/items"}))


def test_an_api_key_and_connection_headers_are_sent(httpserver, target) -> None:
    httpserver.expect_request(
        "/api/items", headers={"X-Key": "k1", "X-Tenant": "acme"}
    ).respond_with_json(ITEMS[:1])
    http_connection(httpserver.url_for("/api"), authType="apikey", apiKeyHeader="X-Key",
                    apiKey="k1", headers=[{"Key": "X-Tenant", "Value": "acme"}])  # fmt: skip
    run_ok(http_source_job(target, {"HTTPURI": "/items"}))


# -- the SSRF guard ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data",
        "//evil.example/x",
        "/../admin",
        "/%2e%2e/admin",
        "/items/..\\..\\admin",
    ],
)
def test_a_reader_only_calls_its_connections_base_url(httpserver, target, uri: str) -> None:
    http_connection(httpserver.url_for("/api"))
    execution = run(http_source_job(target, {"HTTPURI": uri}))
    assert execution.status == ExecutionStatus.FAILED
    assert "connection" in execution.error_message or "cannot hold" in execution.error_message
    assert len(httpserver.log) == 0


def test_a_next_link_to_another_host_is_refused(httpserver: HTTPServer, target) -> None:
    httpserver.expect_request("/api/items").respond_with_json(
        {"value": ITEMS[:1], "next": "http://other.example/api/items?p=2"}
    )
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(target, {
        "HTTPURI": "/items", "PagingStrategy": "nextlink",
        "OffsetStrategy": {"NextLinkPath": "next"},
        "PayloadTxSettings": {"TxDocumentRootPath": "value"},
    })  # fmt: skip
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert "is not on the connection's service" in execution.error_message


def test_a_redirect_is_not_followed(httpserver: HTTPServer, target) -> None:
    httpserver.expect_request("/api/items").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/"}
    )
    http_connection(httpserver.url_for("/api"))
    execution = run(http_source_job(target, {"HTTPURI": "/items"}))
    assert execution.status == ExecutionStatus.FAILED
    assert "redirects are not followed" in execution.error_message


# -- DynamicParameter --------------------------------------------------------------------------
def test_a_dynamic_parameter_list_runs_the_request_per_row_in_parallel(httpserver, target):
    def handler(request: Request) -> Response:
        region = request.args["region"]
        return Response(
            json.dumps([{"id": f"{region}-{i}", "name": region} for i in range(3)]),
            content_type="application/json",
        )

    httpserver.expect_request("/api/stores").respond_with_handler(handler)
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(
        target,
        {"HTTPURI": "/stores?region={{@param.region}}"},
        json_data={"DynamicParameter": {"data": [{"region": "north"}, {"region": "south west"}],
                                        "addParamsToOutput": True, "maxDop": 2}},
    )  # fmt: skip
    run_ok(job)
    got = rows(target, "items")
    assert {(r[0], r[2]) for r in got} == {
        (f"{region}-{i}", region) for region in ("north", "south west") for i in range(3)
    }
    assert sorted(r.args["region"] for r, _ in httpserver.log) == ["north", "south west"]


def test_single_job_per_param_runs_detects_and_logs_each_parameter_row_on_its_own(
    httpserver, target
) -> None:
    # given a service answering per region, and a job with one run per region
    served = {"north": ["n1", "n2"], "south": ["s1"]}
    broken: set[str] = set()

    def handler(request: Request) -> Response:
        region = request.args["region"]
        if region in broken:
            return Response("down", status=500)
        body = [{"id": i, "name": region} for i in served[region]]
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/api/stores").respond_with_handler(handler)
    http_connection(httpserver.url_for("/api"), maxRetries=0)

    def parameters(*regions: str) -> dict[str, Any]:
        return {"DynamicParameter": {"data": [{"region": r} for r in regions],
                                     "singleJobPerParam": True}}  # fmt: skip

    job = http_source_job(target, {"HTTPURI": "/stores?region={{@param.region}}"},
                          json_data=parameters("north", "south"))  # fmt: skip

    def ask_for(*regions: str) -> None:
        definition = Job.objects.get(pk=job.pk).definition
        definition["JsonData"].update(parameters(*regions))
        Job.objects.filter(pk=job.pk).update(definition=definition)

    # when it runs: one change log per region
    first = run_ok(job)
    assert sum("Change log" in m and "written" in m for m in messages(first)) == 2
    assert rows(target, "items") == [("n1", "north"), ("n2", "north"), ("s1", "south")]
    assert first.records_available == 3
    # when south is no longer asked for and north lost a row: only north's row is deleted
    served["north"] = ["n1"]
    ask_for("north")
    run_ok(job)
    assert rows(target, "items") == [("n1", "north"), ("s1", "south")]
    # when south fails: north's changes are applied anyway, and the run fails naming south
    served["north"] = ["n1", "n3"]
    broken.add("south")
    ask_for("north", "south")
    failed = run(Job.objects.get(pk=job.pk))
    assert failed.status == ExecutionStatus.FAILED
    assert "1 of 2 parameter runs failed" in failed.error_message
    assert 'parameter row {"region": "south"}' in failed.error_message
    assert rows(target, "items") == [("n1", "north"), ("n3", "north"), ("s1", "south")]


def test_single_job_per_param_with_a_high_water_mark_is_refused(httpserver, target) -> None:
    http_connection(httpserver.url_for("/api"))
    job = http_source_job(
        target, {"HTTPURI": "/stores?r={{@param.r}}", "HighWaterMark": "id"},
        json_data={"DynamicParameter": {"data": [{"r": 1}], "singleJobPerParam": True}},
    )  # fmt: skip
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert "singleJobPerParam with a high-water mark (id) is not supported" in (
        execution.error_message
    )


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"IncludeByteOutput": True}, "IncludeByteOutput"),
        ({"LogSettings": {"dbOptions": {"logHttpResponse": True}}},
         "LogSettings.dbOptions.logHttpResponse"),
        ({"PayloadTxSettings": {"TxDocumentRootPath": "$", "TxDocumentMsgSchema": "x.xsd"}},
         "PayloadTxSettings.TxDocumentMsgSchema"),
    ],
)  # fmt: skip
def test_settings_the_gateway_cannot_honour_are_refused_by_name(
    httpserver: HTTPServer, target, settings: dict[str, Any], named: str
) -> None:
    http_connection(httpserver.url_for("/api"))
    execution = run(http_source_job(target, {"HTTPURI": "/items", **settings}))
    assert execution.status == ExecutionStatus.FAILED
    assert f"HttpSourceSettings {named}" in execution.error_message
    assert "not supported by this gateway" in execution.error_message
    assert httpserver.log == []


def test_an_unknown_placeholder_fails_naming_it(httpserver: HTTPServer, target) -> None:
    http_connection(httpserver.url_for("/api"))
    execution = run(http_source_job(target, {"HTTPURI": "/x?r={{@param.region}}"}))
    assert execution.status == ExecutionStatus.FAILED
    assert "{{@param.region}} has no value" in execution.error_message


def test_the_worked_rest_example_of_the_docs_runs(httpserver: HTTPServer, datazen, tmp_path):
    # given docs/http.md's example: its files, its connections, its POST /job body
    customers = {"data": {"customers": [
        {"id": 1, "name": "Acme", "address": {"city": "Paris"}, "updated": "2024-05-01T10:00:00"},
        {"id": 2, "name": "Globex", "address": {"city": "Lyon"}, "updated": "2024-05-02T09:30:00"},
    ]}}  # fmt: skip
    httpserver.expect_request("/v1/customers.json").respond_with_json(customers)
    http_connection(httpserver.url_for("/v1"), key="demo_api", authType="none")
    crm = f"sqlite:///{tmp_path / 'crm.db'}"
    call_command("setconnection", "crm_db", "--system", "SQLite", "--type", "DB", "--value", crm)
    body = {"JobReader": {"JobKey": "customers", "ConnectionString": "demo_api",
                          "UpsertColumns": "id", "Path": "demo",
                          "JsonData": {"DirectWriter": "__customers", "HttpSourceSettings": {
                              "IsRESTRequest": True, "HTTPURI": "/customers.json",
                              "HTTPVerb": "GET", "ApplyContentTx": True,
                              "PayloadTxSettings": {"TxDocumentRootPath": "$.data.customers"}}}},
            "JobWriter": {"JobKey": "__customers", "ConnectionString": "crm_db",
                          "TargetObject": "customers", "UpsertColumns": "id",
                          "SourceJobKey": "customers", "Path": "demo",
                          "PropagateDelete": True}}  # fmt: skip
    assert datazen.post("/job", body, format="json").status_code == 200
    # when
    run_ok(Job.objects.get(job_key="customers", kind="reader"))
    # then
    assert rows(crm, "customers") == [
        (1, "Acme", "Paris", "2024-05-01T10:00:00"),
        (2, "Globex", "Lyon", "2024-05-02T09:30:00"),
    ]


def test_an_html_error_page_from_a_rest_service_is_reported_as_not_json(httpserver, target):
    httpserver.expect_request("/api/items").respond_with_data(
        "<html><body>Bad gateway</body></html>", content_type="text/html"
    )
    http_connection(httpserver.url_for("/api"))
    execution = run(http_source_job(target, {"HTTPURI": "/items"}))
    assert execution.status == ExecutionStatus.FAILED
    assert "is not valid JSON" in execution.error_message
    assert "<html><body>Bad gateway" in execution.error_message
    assert landed(target) == []

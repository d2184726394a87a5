"""The HTTP connection format, setconnection, the console's check, the URL guard, and the
document and template rules the readers and writers are built on."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db
from pytest_httpserver import HTTPServer

from jobs.connections import UnknownConnection
from jobs.models import ConnectionString
from jobs.sync.spec import ReaderSpec
from jobs.systems import registry
from jobs.systems.base import Connection
from jobs.systems.http import template
from jobs.systems.http.client import OutsideConnection, resolve_url
from jobs.systems.http.connection import HttpConnectionError, parse_connection
from jobs.systems.http.documents import DocumentError, json_rows, xml_rows
from jobs.systems.http.settings import paging

FULL = {
    "service": "http", "baseUrl": "https://api.example/v2", "authType": "oauth2",
    "tokenUrl": "https://login.example/token", "clientId": "app", "clientSecret": "s3cret",
    "scope": "read", "headers": [{"Key": "X-Tenant", "Value": "acme"}], "timeoutSeconds": 12,
    "maxRetries": 5, "rateLimitPerSecond": 4, "verifyTls": False,
}  # fmt: skip


def test_the_documented_connection_object_is_read_member_by_member() -> None:
    settings = parse_connection(json.dumps(FULL))
    assert settings.base_url == "https://api.example/v2"
    assert (settings.auth_type, settings.client_id, settings.scope) == ("oauth2", "app", "read")
    assert settings.headers == [("X-Tenant", "acme")]
    assert (settings.timeout_seconds, settings.max_retries) == (12, 5)
    assert settings.rate_limit_per_second == 4 and settings.verify_tls is False


def test_tls_is_verified_unless_the_connection_says_otherwise() -> None:
    assert parse_connection('{"baseUrl": "https://x.example"}').verify_tls is True


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "JSON object"),
        ('{"baseUrl": "ftp://x"}', "http:// or https://"),
        ('{"baseUrl": "https://u:p@x.example"}', "must not carry credentials"),
        ('{"baseUrl": "https://x.example", "authType": "kerberos"}', "authType"),
        ('{"baseUrl": "https://x.example", "authType": "basic"}', "needs username"),
        ('{"baseUrl": "https://x.example", "authType": "oauth2", "clientId": "a"}', "tokenUrl"),
        ('{"baseUrl": "https://x.example", "baseURL": "typo"}', "baseURL unknown"),
        ('{"baseUrl": "https://x.example", "timeoutSeconds": "soon"}', "timeoutSeconds"),
        ('{"baseUrl": "https://x.example", "headers": "[{\\"V\\": 1}]"}', "without a Key"),
    ],
)
def test_a_bad_connection_is_refused_naming_the_member(value: str, message: str) -> None:
    with pytest.raises(HttpConnectionError, match=message):
        parse_connection(value)


@pytest.mark.django_db
def test_setconnection_stores_an_http_connection_encrypted() -> None:
    # when
    out = StringIO()
    call_command("setconnection", "crm", "--system", "HTTP", "--type", "HTTP",
                 "--value", json.dumps(FULL), stdout=out)  # fmt: skip
    # then
    stored = ConnectionString.objects.get(key="crm")
    assert json.loads(stored.value) == FULL
    assert stored.display_value == "https://api.example/v2 (oauth2)"
    with db.cursor() as cursor:
        cursor.execute("SELECT encrypted_value FROM jobs_connectionstring WHERE key = 'crm'")
        assert "s3cret" not in cursor.fetchone()[0]


@pytest.mark.django_db
def test_setconnection_refuses_a_bad_http_connection() -> None:
    with pytest.raises(CommandError, match="authType 'bearer' needs token"):
        bearer = '{"baseUrl": "https://x.example", "authType": "bearer"}'
        call_command(
            "setconnection", "crm", "--system", "HTTP", "--type", "HTTP", "--value", bearer
        )
    assert not ConnectionString.objects.filter(key="crm").exists()


def test_the_console_check_makes_a_real_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api", headers={"Authorization": "Bearer t"}).respond_with_data(
        "hello"
    )
    value = json.dumps({"baseUrl": httpserver.url_for("/api"), "authType": "bearer", "token": "t"})
    assert registry.check(Connection("t", "HTTP", "HTTP", value)).startswith(
        "HTTP 200 from http://"
    )
    httpserver.clear()
    httpserver.expect_request("/api").respond_with_data("no", status=401)
    with pytest.raises(PermissionError, match="credentials are refused"):
        registry.check(Connection("t", "HTTP", "HTTP", value.replace('"t"', '"wrong"')))


@pytest.mark.django_db
def test_an_inline_http_connection_string_is_refused() -> None:
    # Jobs name stored HTTP connections only: a job cannot bring its own base URL.
    spec = ReaderSpec.parse({
        "JobKey": "r", "ConnectionString": '{"baseUrl": "http://169.254.169.254"}',
        "JsonData": {"HttpSourceSettings": {"HTTPURI": "/latest"}},
    })  # fmt: skip
    with pytest.raises(UnknownConnection, match="HTTP connections are named by the key"):
        registry.open_reader(spec)


# -- the URL guard -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("/items", "https://api.example/v2/items"),
        ("items?x=1", "https://api.example/v2/items?x=1"),
        ("", "https://api.example/v2"),
        ("/v2/items?page=2", "https://api.example/v2/items?page=2"),
        ("https://api.example/v2/items?page=3", "https://api.example/v2/items?page=3"),
        ("https://API.example:443/v2/x", "https://api.example/v2/x"),
    ],
)
def test_uris_resolve_under_the_base_url(uri: str, url: str) -> None:
    assert resolve_url("https://api.example/v2", uri) == url


@pytest.mark.parametrize(
    "uri",
    [
        "http://api.example/v2/items",  # another scheme
        "https://api.example:8443/v2/items",  # another port
        "https://api.example/v3/items",  # outside the base path
        "https://other.example/v2/items",
        "//other.example/v2",
        "/../admin",
        "/a/../../admin",
        "/%2E%2E/admin",
        "/a\\..\\..\\admin",
        "https://user@api.example/v2/x",
    ],
)
def test_uris_outside_the_base_url_are_refused(uri: str) -> None:
    with pytest.raises(OutsideConnection):
        resolve_url("https://api.example/v2", uri)


# -- TxDocumentRootPath, every form the exports use --------------------------------------------
SOAP = b"""<?xml version="1.0"?>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>
<ns2:r xmlns:ns2="urn:m" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <return><id>10</id><keyFieldName>Code</keyFieldName><name>Territories</name>
  <columns><id>c1</id><name>Code</name>
   <columnType><id>1</id><name>STRING</name></columnType></columns>
  <columns><id>c2</id><name>Size</name><note xsi:nil="true"/>
   <columnType><id>2</id><name>NUMBER</name></columnType></columns>
  <properties><entry><key>Code</key><value>T-N</value></entry>
   <entry><key>Size</key><value/></entry></properties>
 </return>
</ns2:r></S:Body></S:Envelope>"""


def test_a_row_path_gives_each_rows_leaves_and_its_raw_text() -> None:
    (row,) = xml_rows(SOAP, "//return", "_raw", "test")
    assert {k: v for k, v in row.items() if k != "_raw"} == {
        "id": "10", "keyFieldName": "Code", "name": "Territories"}  # fmt: skip
    assert row["_raw"].startswith("<return><id>10</id>")


def test_prefixed_segments_add_a_child_and_the_parent() -> None:
    rows = xml_rows(SOAP, "//columns || t_=columnType || r_=../.", "", "test")
    assert rows == [
        {"id": "c1", "name": "Code", "t_id": "1", "t_name": "STRING",
         "r_id": "10", "r_keyFieldName": "Code", "r_name": "Territories"},
        {"id": "c2", "name": "Size", "note": None, "t_id": "2", "t_name": "NUMBER",
         "r_id": "10", "r_keyFieldName": "Code", "r_name": "Territories"},
    ]  # fmt: skip


def test_an_unprefixed_segment_adds_the_grandparents_leaves_as_they_are() -> None:
    rows = xml_rows(SOAP, "//entry || ../..", "", "test")
    assert rows == [
        {"key": "Code", "value": "T-N", "id": "10", "keyFieldName": "Code", "name": "Territories"},
        {"key": "Size", "value": "", "id": "10", "keyFieldName": "Code", "name": "Territories"},
    ]


def test_json_paths_and_segments_work_the_same_way() -> None:
    doc = json.dumps({"data": {"model": {"id": 7, "owner": {"name": "ops"}, "columns": [
        {"id": "c1", "type": {"name": "STRING"}, "tags": ["a"]}]}}}).encode()  # fmt: skip
    rows = json_rows(doc, "$.data.model.columns || t_=type || r_=../.", "_raw", "test")
    assert rows[0]["id"] == "c1" and rows[0]["t_name"] == "STRING"
    assert rows[0]["r_id"] == 7 and rows[0]["r_owner_name"] == "ops"
    assert rows[0]["type_name"] == "STRING" and rows[0]["tags"] == '["a"]'
    assert json.loads(rows[0]["_raw"])["id"] == "c1"
    assert json_rows(doc, "data.model.columns", "", "t") == json_rows(doc, "$..columns", "", "t")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"<a><b></a>", "not well-formed XML"),
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "DOCTYPE"),
    ],
)
def test_bad_xml_is_refused_clearly(content: bytes, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        xml_rows(content, "//a", "", "The response")


# -- templates ---------------------------------------------------------------------------------
def test_values_are_escaped_for_the_body_they_land_in() -> None:
    row = {"t": 'a "b" <c> & \\ \n'}
    xml = template.render_row("<t>{{t}}</t>", row, template.xml_escape, "w")
    assert xml == "<t>a &quot;b&quot; &lt;c&gt; &amp; \\ \n</t>"
    as_json = template.render_row('{"t": "{{t}}"}', row, template.json_escape, "w")
    assert json.loads(as_json) == row
    assert template.render_row("<x>{{{t}}}</x>", {"t": "<b/>"}, template.xml_escape, "w") == (
        "<x><b/></x>"
    )


def test_json_placeholders_outside_strings_are_json_values() -> None:
    body = '{"id": {{id}}, "name": {{name}}, "note": "{{name}} \\"{{id}}\\"", "ok": {{ok}}}'
    rows = [
        ({"id": 5, "name": 'A "b"', "ok": True}, {"id": 5, "name": 'A "b"', "ok": True}),
        ({"id": None, "name": None, "ok": False}, {"id": None, "name": None, "ok": False}),
        ({"id": Decimal("2.50"), "name": "x", "ok": None}, {"id": 2.5, "name": "x", "ok": None}),
    ]
    for row, expected in rows:
        sent = json.loads(template.render_row(body, row, template.json_escape, "w"))
        assert {k: sent[k] for k in expected} == expected
        assert sent["note"] == f'{template.as_text(row["name"])} "{template.as_text(row["id"])}"'


def test_a_value_is_never_read_as_a_template() -> None:
    row = {"a": "{{b}}", "b": "secret"}
    assert template.render_row("{{{a}}} {{a}}", row, template.raw, "w") == "{{b}} {{b}}"


def test_a_placeholder_naming_no_column_is_an_error() -> None:
    with pytest.raises(template.TemplateError, match=r"\{\{nope\}\} names no column"):
        template.render_row("{{nope}}", {"id": 1}, template.raw, "JobWriter")


def test_paging_is_read_from_numbers_or_names() -> None:
    assert paging(1, {"PageSize": 50}, "S").kind == "offset"
    assert paging("Continuation Token", {"TokenPath": "t"}, "S").kind == "token"
    with pytest.raises(Exception, match="PagingStrategy 9"):
        paging(9, None, "S")
    with pytest.raises(Exception, match="NextLinkPath"):
        paging("nextlink", None, "S")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"PagingStrategy": 9}, "HttpSourceSettings.PagingStrategy 9 is not one of"),
        ({"PagingStrategy": "nextlink"}, "NextLinkPath is needed"),
        ({"HTTPVerb": "FETCH"}, "HTTPVerb 'FETCH' is not an HTTP method"),
        ({"HTTPHeaders": "[{"}, "HTTPHeaders is a string but not valid JSON"),
    ],
)
def test_a_bad_http_reader_is_refused_when_saved(datazen, settings, message: str) -> None:
    source = {"HTTPURI": "/x", **settings}
    body = {"JobReader": {"JobKey": "r1", "ConnectionString": "api",
                          "JsonData": {"HttpSourceSettings": source}}}  # fmt: skip
    response = datazen.post("/job", body, format="json")
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.django_db
def test_a_bad_error_handling_of_an_http_writer_is_refused_when_saved(datazen) -> None:
    reader = {"JobKey": "r2", "ConnectionString": "sqlite:///x.db", "SqlRead": "SELECT 1"}
    writer = {"JobKey": "__r2", "ConnectionString": "api", "TargetSystem": "HTTP",
              "SourceJobKey": "r2", "UpsertScript": "{}",
              "Options": {"ErrorHandling": {"ActionOnFail": 7}}}  # fmt: skip
    response = datazen.post("/job", {"JobReader": reader, "JobWriter": writer}, format="json")
    assert response.status_code == 400
    assert "ActionOnFail 7 is not 0 (fail), 1 (skip) or 2 (dead letter)" in (
        response.content.decode()
    )


def test_the_rate_limit_spaces_requests_evenly(httpserver: HTTPServer) -> None:
    from jobs.systems.http.client import HttpClient

    httpserver.expect_request("/api/x").respond_with_data("ok")
    value = {"baseUrl": httpserver.url_for("/api"), "rateLimitPerSecond": 20}
    client = HttpClient(parse_connection(json.dumps(value)))
    started = time.monotonic()
    for _ in range(5):
        client.request("GET", "/x")
    assert time.monotonic() - started >= 0.2  # 5 starts at 20/s: 4 intervals of 50 ms
    client.close()


def test_connect_errors_are_retried_then_reported() -> None:
    from jobs.systems.http import client as http_client
    from tests.processes import free_port

    waits: list[float] = []
    closed = f"http://127.0.0.1:{free_port()}"
    value = {"baseUrl": closed, "maxRetries": 2}
    client = http_client.HttpClient(parse_connection(json.dumps(value)))
    client.sleep = waits.append
    with pytest.raises(http_client.HttpRequestError, match="cannot connect after 3 attempt"):
        client.request("GET", "/x")
    # exponential backoff with jitter: each wait between half and all of 0.5 s, then 1 s
    assert 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0
    client.close()

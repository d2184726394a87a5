"""DataFlux job flow resources: root, collection, definition, content, metadata, ids, errors."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.test import override_settings

from jobs.flows.runtime.definitions import flow_id
from jobs.models import Job
from tests.test_dataflux_support import (
    BASE,
    basic_client,
    example_xml,
    fresh_state,
    make_user,
    upload,
)

SAMPLE_HOST = "http://testserver"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_state()


@pytest.fixture
def client(db: None):
    make_user("ann")
    return basic_client("ann")


def rels(body: dict) -> list[tuple[str, str]]:
    return [(link["rel"], link["method"]) for link in body["links"]]


def test_root_lists_the_documents_links_and_an_etag(client) -> None:
    # when
    response = client.get(f"{BASE}/")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 1
    assert body["links"][0] == {
        "href": f"{SAMPLE_HOST}{BASE}/jobFlowDefns",
        "method": "GET",
        "rel": "jobFlowDefns",
        "type": "application/vnd.sas.collection+json",
        "uri": "/jobFlowDefns",
    }
    assert rels(body) == [
        ("jobFlowDefns", "GET"),
        ("create", "POST"),
        ("serverInfo", "GET"),
        ("engines", "GET"),
        ("enginesByName", "GET"),
    ]
    assert body["links"][4]["uri"] == "/engines?name={URL-encoded-name}"
    assert all(c in "0123456789abcdef" for c in response["ETag"])
    assert client.get(BASE).status_code == 200


def test_upload_answers_the_definition(client) -> None:
    # when
    response = upload(client, "Determine_Gender.ddf")
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.sas.datamgmt.jobflow.definition+json"
    body = response.json()
    assert body["id"] == "RGV0ZXJtaW5lX0dlbmRlci5kZGY="
    assert body["name"] == "Determine_Gender.ddf"
    assert body["description"] == "Determine gender from a person's name"
    assert body["size"] == len(example_xml("Determine_Gender.ddf").encode())
    assert len(body["modifiedTimeStamp"]) == len("20150106T16:16:37")
    assert body["modifiedTimeStamp"][8] == "T"
    assert rels(body) == [
        ("self", "GET"),
        ("delete", "DELETE"),
        ("metadata", "GET"),
        ("content", "GET"),
        ("updateContent", "PUT"),
        ("execute", "POST"),
        ("engines", "GET"),
        ("up", "GET"),
    ]
    fid = body["id"]
    assert body["links"][2] == {
        "href": f"{SAMPLE_HOST}{BASE}/jobFlowDefns/{fid}/metadata",
        "method": "GET",
        "rel": "metadata",
        "type": "application/vnd.sas.datamgmt.jobflow.metadata+json",
        "uri": f"/jobFlowDefns/{fid}/metadata",
    }


def test_upload_with_the_vendor_media_type(client) -> None:
    content = base64.b64encode(example_xml("Determine_Gender.ddf").encode()).decode()
    response = client.generic(
        "POST",
        f"{BASE}/jobFlowDefns",
        f'{{"version": 1, "name": "Event for Logging.djf", "content": "{content}"}}',
        content_type="application/vnd.sas.datamgmt.jobflow+json",
    )
    assert response.status_code == 200
    assert response.json()["id"] == "RXZlbnQgZm9yIExvZ2dpbmcuZGpm"


def test_collection_of_summaries(client) -> None:
    # given
    upload(client, "waiter2.dmc", example_xml("Determine_Gender.ddf"))
    upload(client, "waiter.dmc", "<flow/>")
    # when
    response = client.get(f"{BASE}/jobFlowDefns")
    # then
    assert response["Content-Type"] == "application/vnd.sas.collection+json"
    body = response.json()
    assert (body["version"], body["name"], body["count"]) == (1, "items", 2)
    ids = [item["id"] for item in body["items"]]
    assert sorted(ids) == ["d2FpdGVyLmRtYw==", "d2FpdGVyMi5kbWM="]
    item = next(i for i in body["items"] if i["id"] == "d2FpdGVyLmRtYw==")
    assert item["name"] == "waiter.dmc"
    assert item["description"] == ""
    assert item["links"] == [
        {
            "href": f"{SAMPLE_HOST}{BASE}/jobFlowDefns/d2FpdGVyLmRtYw==",
            "method": "GET",
            "rel": "self",
            "type": "application/vnd.sas.datamgmt.jobflow.definition+json",
            "uri": "/jobFlowDefns/d2FpdGVyLmRtYw==",
        },
        {
            "href": f"{SAMPLE_HOST}{BASE}/jobFlowDefns/d2FpdGVyLmRtYw==",
            "method": "DELETE",
            "rel": "delete",
            "uri": "/jobFlowDefns/d2FpdGVyLmRtYw==",
        },
    ]
    assert body["links"] == [
        {
            "href": f"{SAMPLE_HOST}{BASE}/",
            "method": "GET",
            "rel": "up",
            "type": "application/vnd.sas.link",
            "uri": "/",
        }
    ]


def test_duplicate_name_is_409(client) -> None:
    upload(client, "Determine_Gender.ddf")
    response = upload(client, "Determine_Gender.ddf")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/vnd.sas.error+json"
    body = response.json()
    assert body["httpStatusCode"] == 409
    assert "already exists" in body["message"]
    assert set(body) >= {"httpStatusCode", "errorCode", "message", "details"}


@pytest.mark.parametrize(
    "name",
    [
        "bad<name>.ddf",
        'quote".ddf',
        "pipe|x.ddf",
        "what?.ddf",
        "../escape.ddf",
        "a/../../b.ddf",
        "/absolute.ddf",
        "con.ddf",
        "trailing./x.ddf",
        "star*.ddf",
    ],
)
def test_invalid_name_is_404(client, name: str) -> None:
    response = upload(client, name, "<flow/>")
    assert response.status_code == 404
    assert response.json()["errorCode"] == 11021
    assert not Job.objects.exists()


def test_relative_path_is_stored_under_it(client) -> None:
    # when
    response = upload(
        client, "services/people/Determine_Gender.ddf", example_xml("Determine_Gender.ddf")
    )
    # then
    assert response.status_code == 200
    assert response.json()["name"] == "services/people/Determine_Gender.ddf"
    stored = Path(settings.DATA_DIR) / "flows" / "services" / "people" / "Determine_Gender.ddf"
    assert stored.read_text() == example_xml("Determine_Gender.ddf")


@override_settings(DATAFLUX_MAX_CONTENT_BYTES=100)
def test_content_over_the_limit_is_413(client) -> None:
    response = upload(client, "big.ddf", "<flow>" + " " * 200 + "</flow>")
    assert response.status_code == 413
    fid = flow_id("small.ddf")
    assert upload(client, "small.ddf", "<flow/>").status_code == 200
    put = client.put(
        f"{BASE}/jobFlowDefns/{fid}/content",
        "<flow>" + " " * 200 + "</flow>",
        content_type="application/vnd.sas.datamgmt.jobflow.content+xml",
    )
    assert put.status_code == 413


def test_bad_create_bodies_are_400(client) -> None:
    assert client.post(f"{BASE}/jobFlowDefns", {"name": "x.ddf"}, format="json").status_code == 400
    broken = client.generic(
        "POST", f"{BASE}/jobFlowDefns", '{"name": "x.ddf",', content_type="application/json"
    )
    assert broken.status_code == 400
    assert "line 1, column" in broken.json()["message"]


def test_head_checks_existence(client) -> None:
    upload(client, "Determine_Gender.ddf")
    assert client.head(f"{BASE}/jobFlowDefns/RGV0ZXJtaW5lX0dlbmRlci5kZGY=").status_code == 200
    assert client.head(f"{BASE}/jobFlowDefns/{flow_id('nope.ddf')}").status_code == 404
    assert client.head(f"{BASE}/jobFlowDefns/not*base64").status_code == 400


def test_content_round_trip_and_replace_keeps_the_name(client) -> None:
    # given
    fid = upload(client, "Determine_Gender.ddf").json()["id"]
    # when
    new_xml = "<flow><description>second version</description></flow>"
    put = client.put(
        f"{BASE}/jobFlowDefns/{fid}/content",
        new_xml,
        content_type="application/vnd.sas.datamgmt.jobflow.content+xml",
    )
    # then
    assert put.status_code == 200
    assert put.json()["name"] == "Determine_Gender.ddf"
    assert put.json()["description"] == "second version"
    assert put.json()["size"] == len(new_xml)
    content = client.get(f"{BASE}/jobFlowDefns/{fid}/content")
    assert content["Content-Type"] == "application/vnd.sas.datamgmt.jobflow.content+xml"
    assert content.content.decode() == new_xml


def test_delete_is_204_then_404(client) -> None:
    fid = upload(client, "Determine_Gender.ddf").json()["id"]
    assert client.delete(f"{BASE}/jobFlowDefns/{fid}").status_code == 204
    assert client.get(f"{BASE}/jobFlowDefns/{fid}").status_code == 404
    assert client.delete(f"{BASE}/jobFlowDefns/{fid}").status_code == 404


@pytest.mark.parametrize(("char", "name"), [("/", "Noël.ddf"), ("+", "Price~List.ddf")])
def test_ids_with_slash_and_plus_work_raw_and_encoded(client, char: str, name: str) -> None:
    # given
    fid = upload(client, name, example_xml("Determine_Gender.ddf")).json()["id"]
    assert char in fid
    # when / then
    for form in (fid, quote(fid, safe="")):
        assert client.get(f"{BASE}/jobFlowDefns/{form}").json()["name"] == name
        assert client.get(f"{BASE}/jobFlowDefns/{form}/metadata").status_code == 200
        assert client.get(f"{BASE}/jobFlowDefns/{form}/content").status_code == 200
        assert client.get(f"{BASE}/jobFlowDefns/{form}/engines").status_code == 200
    assert client.delete(f"{BASE}/jobFlowDefns/{quote(fid, safe='')}").status_code == 204


def test_metadata_is_read_from_the_xml(client) -> None:
    fid = upload(client, "dataSvcTypes.ddf").json()["id"]
    response = client.get(f"{BASE}/jobFlowDefns/{fid}/metadata")
    assert response["Content-Type"] == "application/vnd.sas.datamgmt.jobflow.metadata+json"
    body = response.json()
    assert body["id"] == "ZGF0YVN2Y1R5cGVzLmRkZg=="
    assert body["description"] == "a data service that exposes all available data types"
    assert body["inputs"]["Process Priority"] == "low"
    assert body["inputs"]["dataTable"]["metadata"][:2] == [
        {"name": "Full Name", "type": "string", "maxChars": 255},
        {"name": "Age", "type": "integer"},
    ]
    assert body["outputs"]["Address"] is None
    assert body["outputs"]["dataTable"]["metadata"] == [
        {"name": "status", "type": "string", "maxChars": 15},
        {"name": "status code", "type": "integer"},
    ]
    assert rels(body) == [("execute", "POST"), ("up", "GET"), ("self", "GET")]


def test_metadata_of_an_invalid_flow_names_the_line(client) -> None:
    fid = upload(client, "broken.ddf", "<flow>\n<inputs>\n<macro/></inputs></flow>").json()["id"]
    response = client.get(f"{BASE}/jobFlowDefns/{fid}/metadata")
    assert response.status_code == 400
    assert "line 3" in response.json()["message"]


def test_listing_shows_everything_but_reading_needs_permission(db: None) -> None:
    # given a flow and a user who may only list
    make_user("ann")
    upload(basic_client("ann"), "Determine_Gender.ddf")
    make_user("lee", permissions=())
    lee = basic_client("lee")
    fid = flow_id("Determine_Gender.ddf")
    # then
    assert lee.get(f"{BASE}/jobFlowDefns").json()["count"] == 1
    for response in (
        lee.get(f"{BASE}/jobFlowDefns/{fid}/content"),
        lee.get(f"{BASE}/jobFlowDefns/{fid}/metadata"),
        lee.delete(f"{BASE}/jobFlowDefns/{fid}"),
        lee.put(f"{BASE}/jobFlowDefns/{fid}/content", "<flow/>", content_type="text/xml"),
        upload(lee, "other.ddf", "<flow/>"),
    ):
        assert response.status_code == 403
        assert response.json()["httpStatusCode"] == 403
    assert Job.objects.get().content == example_xml("Determine_Gender.ddf")


def test_server_info_reports_the_gateway(client) -> None:
    body = client.get(f"{BASE}/serverInfo").json()
    assert body["fullVersion"].endswith(f"{settings.GATEWAY_VERSION} (build 0)")
    assert body["majorVersion"] == int(settings.GATEWAY_VERSION.split(".")[0])
    assert body["minutesFromGmt"] == 0
    assert body["serverStartupDate"] <= body["serverCurrentDate"]
    # the data-quality nodes' reference data, with the versions it came with
    assert any(
        line.startswith("libphonenumber metadata --- phonenumbers ")
        for line in body["libraryVersion"]
    )
    assert any(line.startswith("Unicode CLDR ") for line in body["libraryVersion"])
    assert len(body["libraryVersion"]) == 12
    assert rels(body) == [("up", "GET")]


def test_unknown_resource_is_a_sas_404(client) -> None:
    response = client.get(f"{BASE}/nothingHere")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/vnd.sas.error+json"


def test_wrong_method_is_a_sas_405(client) -> None:
    response = client.patch(f"{BASE}/serverInfo")
    assert response.status_code == 405
    assert response.json()["httpStatusCode"] == 405


def test_unexpected_failure_is_a_sas_500(client, monkeypatch) -> None:
    # given a fault deep in the server (the edge of what a test can provoke honestly)
    def broken() -> list:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("jobs.flows.runtime.definitions.flows", broken)
    # when
    response = client.get(f"{BASE}/jobFlowDefns")
    # then the client still gets the SAS error shape, without the internals
    assert response.status_code == 500
    assert response["Content-Type"] == "application/vnd.sas.error+json"
    assert response.json()["errorCode"] == 11500
    assert "disk on fire" not in response.json()["message"]


def test_a_run_reuses_its_flow_while_the_row_is_unchanged(db: None) -> None:
    # given a stored flow, looked up once for a run
    from jobs.flows.runtime import definitions

    job = definitions.create_flow("reuse.ddf", b"<flow/>")
    first = definitions.flow_for_run("reuse.ddf")
    # then the next run gets the same instance, with no reload
    assert first is not None and first.pk == job.pk
    assert definitions.flow_for_run("reuse.ddf") is first
    # when its content is replaced, the next run gets the new flow
    definitions.replace_content(job, b"<flow><description>new</description></flow>")
    second = definitions.flow_for_run("reuse.ddf")
    assert second is not first and second is not None
    assert second.content.endswith("<description>new</description></flow>")
    # and once it is deleted, there is none
    definitions.delete_flow(job)
    assert definitions.flow_for_run("reuse.ddf") is None

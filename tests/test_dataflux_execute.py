"""Executing job flows over the API: the document's example, typed inputs, and what fails."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from jobs.flows.runtime.definitions import flow_id
from jobs.models import Execution, ExecutionStatus, LogEntry
from tests.test_dataflux_support import (
    BASE,
    basic_client,
    execute,
    fresh_state,
    make_user,
    upload,
)

DOCUMENT_REQUEST = {
    "Process Priority": "low",
    "Logging": "disable",
    "dataTable": {
        "metadata": [
            {"name": "Full Name", "type": "string", "maxChars": 255},
            {"name": "Age", "type": "integer"},
            {"name": "Donor", "type": "boolean"},
            {"name": "Birthday", "type": "date"},
            {"name": "Temperature", "type": "real"},
        ],
        "data": [
            ["sample string", 2, True, "2014-10-13", 5.5],
            ["another string", 246, False, "2014-12-31", 15.7075],
        ],
    },
}
DOCUMENT_OUTPUTS = {
    "Address": None,
    "RecordsProcessed": "2",
    "dataTable": {
        "metadata": [
            {"name": "status", "type": "string", "maxChars": 15},
            {"name": "status code", "type": "integer"},
        ],
        "data": [["success", 1], ["", None]],
    },
}
DATA_SVC = "ZGF0YVN2Y1R5cGVzLmRkZg=="


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_state()


@pytest.fixture
def client(db: None):
    make_user("ann")
    return basic_client("ann")


def test_the_documents_execute_request_and_response(client) -> None:
    # given
    upload(client, "dataSvcTypes.ddf")
    # when
    response = execute(client, DATA_SVC, DOCUMENT_REQUEST)
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.sas.datamgmt.jobflow.metadata+json"
    assert response.json()["outputs"] == DOCUMENT_OUTPUTS


def test_the_execution_is_recorded_with_its_log(client) -> None:
    upload(client, "dataSvcTypes.ddf")
    execute(client, DATA_SVC, DOCUMENT_REQUEST)
    execution = Execution.objects.get()
    assert execution.listener_type == "flow"
    assert execution.status == ExecutionStatus.SUCCEEDED
    assert execution.requested_by == "ann"
    assert execution.result == {"outputs": DOCUMENT_OUTPUTS}
    assert execution.record_count == 2
    assert "loaded into engine" in LogEntry.objects.get(execution=execution).message


def test_wrong_accept_is_400(client) -> None:
    upload(client, "dataSvcTypes.ddf")
    response = execute(client, DATA_SVC, DOCUMENT_REQUEST, accept="application/json")
    assert response.status_code == 400
    assert "Accept" in response.json()["message"]
    assert not Execution.objects.exists()


@pytest.mark.parametrize("body", [None, "{}", ""])
def test_flow_without_inputs_runs_on_an_empty_body(client, body: str | None) -> None:
    upload(
        client,
        "hello.ddf",
        '<flow><outputs><macro name="Hello" expression="\'world\'"/></outputs></flow>',
    )
    response = client.generic(
        "POST",
        f"{BASE}/jobFlowDefns/{flow_id('hello.ddf')}",
        body or "",
        content_type="application/vnd.sas.datamgmt.jobflow.metadata+json",
        HTTP_ACCEPT="application/vnd.sas.datamgmt.jobflow.metadata+json",
    )
    assert response.status_code == 200
    assert response.json()["outputs"] == {"Hello": "world"}


def test_a_flow_that_produces_nothing_has_no_outputs(client) -> None:
    upload(client, "quiet.ddf", "<flow/>")
    response = execute(client, flow_id("quiet.ddf"), None)
    assert response.status_code == 200
    assert "outputs" not in response.json()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            ["Ann", "two", True, "2014-10-13", 5.5],
            "row 2, field 'Age': expected an integer, got 'two'",
        ),
        (["Ann", 2, "maybe", "2014-10-13", 5.5], "row 2, field 'Donor': expected a boolean"),
        (
            ["Ann", 2, True, "13/10/2014", 5.5],
            "row 2, field 'Birthday': expected a date (YYYY-MM-DD)",
        ),
        (
            ["Ann", 2, True, "2014-10-13", "hot"],
            "row 2, field 'Temperature': expected a real number",
        ),
        (["Ann", 2, True], "row 2 has 3 values, expected 5"),
        ([None, 2, True, "2014-10-13", 5.5], "row 2, field 'Full Name' is required"),
        (
            ["x" * 256, 2, True, "2014-10-13", 5.5],
            "row 2, field 'Full Name': is 256 characters long, more than maxChars 255",
        ),
    ],
)
def test_bad_input_is_400_naming_field_and_row(client, row: list, message: str) -> None:
    # given
    upload(client, "dataSvcTypes.ddf")
    request = {**DOCUMENT_REQUEST, "dataTable": {**DOCUMENT_REQUEST["dataTable"]}}
    request["dataTable"]["data"] = [DOCUMENT_REQUEST["dataTable"]["data"][0], row]
    # when
    response = execute(client, DATA_SVC, request)
    # then
    assert response.status_code == 400
    assert response["Content-Type"] == "application/vnd.sas.error+json"
    assert message in response.json()["message"]


def test_missing_required_input_is_400(client) -> None:
    upload(client, "dataSvcTypes.ddf")
    request = {"dataTable": {"metadata": [{"name": "Age", "type": "integer"}], "data": [[1]]}}
    response = execute(client, DATA_SVC, request)
    assert response.status_code == 400
    assert "missing required field 'Full Name'" in response.json()["message"]


def test_invalid_flow_is_accepted_but_execution_names_the_line(client) -> None:
    # given
    xml = "<flow>\n<nodes>\n<externalData/>\n<filter condition='Salary &gt; 1'/>\n</nodes>\n</flow>"
    assert upload(client, "invalid.ddf", xml).status_code == 200
    # when
    response = execute(client, flow_id("invalid.ddf"), {})
    # then
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == 11010
    assert "line 3" in body["message"]
    assert Execution.objects.get().status == ExecutionStatus.FAILED


def test_xxe_upload_reads_nothing_and_answers_an_error(client, tmp_path: Path) -> None:
    # given
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    xml = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE flow [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        "<flow><description>&xxe;</description>"
        '<outputs><macro name="Leak" expression="\'&xxe;\'"/></outputs></flow>'
    )
    upload(client, "xxe.ddf", xml)
    # when
    responses = [
        execute(client, flow_id("xxe.ddf"), {}),
        client.get(f"{BASE}/jobFlowDefns/{flow_id('xxe.ddf')}/metadata"),
    ]
    # then
    for response in responses:
        assert response.status_code == 400
        assert "DOCTYPE" in response.json()["message"]
        assert b"TOP-SECRET" not in response.content
    listing = client.get(f"{BASE}/jobFlowDefns").content
    assert b"TOP-SECRET" not in listing


def test_entity_expansion_upload_answers_an_error(client) -> None:
    lol = "lol" * 10
    xml = (
        '<?xml version="1.0"?>\n<!DOCTYPE flow [\n <!ENTITY a "' + lol + '">\n'
        ' <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n'
        ' <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n'
        "<flow><description>&c;</description></flow>"
    )
    upload(client, "bomb.ddf", xml)
    response = execute(client, flow_id("bomb.ddf"), {})
    assert response.status_code == 400
    assert "not allowed" in response.json()["message"]


def test_execute_needs_the_execute_permission(db: None) -> None:
    make_user("ann")
    upload(basic_client("ann"), "dataSvcTypes.ddf")
    make_user("viewer", permissions=("view_job",))
    response = execute(basic_client("viewer"), DATA_SVC, DOCUMENT_REQUEST)
    assert response.status_code == 403
    assert not Execution.objects.exists()


def test_execute_unknown_flow_is_404(client) -> None:
    assert execute(client, flow_id("missing.ddf"), {}).status_code == 404


def test_malicious_expression_in_a_flow_is_refused(client) -> None:
    xml = (
        "<flow><outputs><macro name='x' expression=\"(SELECT group_concat(name) "
        'FROM sqlite_master)"/></outputs></flow>'
    )
    upload(client, "evil.ddf", xml)
    response = execute(client, flow_id("evil.ddf"), {})
    assert response.status_code == 400
    assert "not allowed" in response.json()["message"]


def test_inputs_sent_as_base64_content_or_plain_xml_both_upload(client) -> None:
    raw = "<flow><description>plain</description></flow>"
    body = {"name": "plain.ddf", "content": raw}
    assert client.post(f"{BASE}/jobFlowDefns", body, format="json").json()["description"] == "plain"
    encoded = base64.b64encode(raw.encode()).decode().rstrip("=")
    body = {"name": "nopad.ddf", "content": encoded}
    assert client.post(f"{BASE}/jobFlowDefns", body, format="json").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        "[1, 2]",
        '{"inputs": "text"}',
        '{"inputs": {"dataTable": {"metadata": "x", "data": []}}}',
        '{"inputs": {"dataTable": {"metadata": [{"name": "Age", "type": "integer"}], "data": 5}}}',
        '{"inputs": {"dataTable": {"metadata": [{"type": "integer"}], "data": []}}}',
        '{"inputs": {"dataTable": {"metadata": [{"name": "Age", "maxChars": "9"}], "data": []}}}',
        '{"inputs": {"dataTable": {"metadata": [{"name": "Age", "type": "integer"}], '
        '"data": [[99999999999999999999999]]}}}',
        '{"inputs": {"dataTable": {"metadata": [{"name": "Age", "type": "real"}], '
        '"data": [[1e400]]}}}',
        '{"inputs": {"dataTable": {"metadata": [{"name": "Age", "type": "integer"}], '
        '"data": [[{"a": 1}]]}}}',
        '{"inputs": {"MinimumAge": [1, 2]}}',
        "[" * 100000 + "]" * 100000,
        '{"inputs": ',
        "\xff\xfe not utf-8",
    ],
)
def test_bad_bodies_are_400_never_500(client, body: str) -> None:
    upload(client, "dataSvcTypes.ddf")
    response = client.generic(
        "POST",
        f"{BASE}/jobFlowDefns/{DATA_SVC}",
        body.encode("latin-1") if body.startswith("\xff") else body,
        content_type="application/json",
        HTTP_ACCEPT="application/vnd.sas.datamgmt.jobflow.metadata+json",
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/vnd.sas.error+json"

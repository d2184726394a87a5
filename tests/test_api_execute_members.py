"""DataFlux execute: a member the container does not have is a 400 naming it, never ignored."""

from __future__ import annotations

import pytest

from jobs.models import Execution
from tests.test_dataflux_support import BASE, METADATA, basic_client, fresh_state, make_user, upload

DATA_SVC = "ZGF0YVN2Y1R5cGVzLmRkZg=="
METADATA_COLUMNS = [
    {"name": "Full Name", "type": "string", "maxChars": 255},
    {"name": "Age", "type": "integer"},
]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_state()


@pytest.fixture
def client(db: None):
    make_user("ann")
    client = basic_client("ann")
    upload(client, "dataSvcTypes.ddf")
    return client


def post(client, body: dict):
    return client.post(f"{BASE}/jobFlowDefns/{DATA_SVC}", body, format="json", HTTP_ACCEPT=METADATA)


def test_rows_instead_of_data_is_a_400_naming_the_member(client) -> None:
    # given a data table whose rows are under "rows"
    table = {"metadata": METADATA_COLUMNS, "rows": [["Ann", 3]]}
    # when
    response = post(client, {"inputs": {"dataTable": table}})
    # then
    assert response.status_code == 400
    assert response["Content-Type"] == "application/vnd.sas.error+json"
    error = response.json()
    assert error["httpStatusCode"] == 400
    assert error["errorCode"] == 11002
    assert "'rows'" in error["message"]
    assert "'dataTable'" in error["message"]
    assert "did you mean 'data'?" in error["message"]
    assert error["details"] == ["data table 'dataTable': rows"]
    # and nothing ran
    assert not Execution.objects.exists()


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"input": {"Logging": "on"}}, "'input' in the request body; did you mean 'inputs'?"),
        (
            {"inputs": {"dataTable": {"metdata": METADATA_COLUMNS, "data": []}}},
            "'metdata' in data table 'dataTable'; did you mean 'metadata'?",
        ),
        (
            {
                "inputs": {
                    "dataTable": {
                        "metadata": [{"name": "Age", "type": "integer", "maxchars": 3}],
                        "data": [],
                    }
                }
            },
            "'maxchars' in data table 'dataTable', metadata column 1; did you mean 'maxChars'?",
        ),
    ],
)
def test_other_misnamed_members_are_named_too(client, body: dict, named: str) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert named in response.json()["message"]


def test_the_metadata_container_sent_back_is_accepted(client) -> None:
    # given what GET …/metadata answered, with the inputs filled in
    metadata = client.get(f"{BASE}/jobFlowDefns/{DATA_SVC}/metadata").json()
    metadata["inputs"] = {
        "dataTable": {"metadata": METADATA_COLUMNS, "data": [["Ann", 3], ["Bob", 250]]}
    }
    # when
    response = post(client, metadata)
    # then
    assert response.status_code == 200, response.json()
    assert response.json()["outputs"]["RecordsProcessed"] == "2"

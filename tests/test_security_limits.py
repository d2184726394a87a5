"""Issue 13's resource limits: body size (413 before parsing), JSON depth and numbers, the
inputs that gave HTML 500s, and regular expressions that froze the gateway."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.pipeline import PipelineError, compile_pipeline
from jobs.systems.batch import Batch, Column
from tests.test_dataflux_support import basic_client, make_user, upload

pytestmark = pytest.mark.django_db

DATAFLUX = "/SASDataMgmtRTDataJob/rest"


def reader(**extra: Any) -> dict[str, Any]:
    return {"JobReader": {"JobKey": "r1", "SqlRead": "SELECT 1", "ConnectionString": "db", **extra}}


def post_raw(client: APIClient, path: str, body: str, method: str = "post") -> Any:
    return getattr(client, method)(path, body, content_type="application/json")


def assert_datazen_error(response: Any, status: int, text: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["StatusCode"] == status
    assert text in body["Error"]


# -- 413 before parsing --------------------------------------------------------------------


def test_a_datazen_body_over_the_limit_is_413_before_it_is_read(
    datazen: APIClient, settings: Any
) -> None:
    settings.GATEWAY_MAX_BODY_BYTES = 1000
    body = json.dumps(reader(SqlRead="SELECT '" + "x" * 2000 + "'"))
    response = post_raw(datazen, "/job", body)
    assert_datazen_error(response, 413, "the limit is 1000")
    assert not Job.objects.exists()


def test_a_datazen_body_under_the_limit_is_read(datazen: APIClient, settings: Any) -> None:
    settings.GATEWAY_MAX_BODY_BYTES = 1000
    assert post_raw(datazen, "/job", json.dumps(reader())).status_code == 200


def test_a_dataflux_body_over_its_limit_is_413_in_the_sas_shape(settings: Any) -> None:
    # given
    make_user("ann")
    client = basic_client("ann")
    settings.GATEWAY_MAX_DATAFLUX_BODY_BYTES = 500
    # when
    response = client.post(
        f"{DATAFLUX}/jobFlowDefns", {"name": "big", "content": "A" * 1000}, format="json"
    )
    # then
    assert response.status_code == 413
    assert response["Content-Type"] == "application/vnd.sas.error+json"
    assert response.json()["httpStatusCode"] == 413
    assert response.json()["errorCode"] == 11040


def test_dataflux_bodies_may_be_larger_than_datazen_ones_by_default(settings: Any) -> None:
    assert settings.GATEWAY_MAX_DATAFLUX_BODY_BYTES > settings.GATEWAY_MAX_BODY_BYTES


def test_a_content_length_that_is_not_a_number_is_400(datazen: APIClient) -> None:
    response = datazen.post("/job", "{}", content_type="application/json", CONTENT_LENGTH="x")
    assert_datazen_error(response, 400, "Content-Length")


# -- JSON bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
        ("[" * 40 + "]" * 40, "nested deeper than 32"),
        ('{"JobReader": {"JobKey": "a", "Initialize": ' + "1" * 4300 + "}}", "4300 digits"),
        ('{"JobReader": {"JobKey": NaN}}', "'NaN' is not a JSON number"),
        ('{"JobReader": {"JobKey": -Infinity}}', "'-Infinity' is not a JSON number"),
    ],
)
def test_json_over_a_bound_is_400_in_the_datazen_shape(
    datazen: APIClient, body: str, message: str
) -> None:
    assert_datazen_error(post_raw(datazen, "/job", body), 400, message)


def test_json_over_a_bound_is_400_in_the_sas_shape() -> None:
    make_user("ann")
    response = basic_client("ann").post(
        f"{DATAFLUX}/jobFlowDefns", "[" * 5000 + "]" * 5000, content_type="application/json"
    )
    assert response.status_code == 400
    assert "nested deeper" in response.json()["message"]


# -- the inputs the issue lists as HTML 500s -----------------------------------------------


def test_a_numeric_system_name_is_400(datazen: APIClient) -> None:
    response = post_raw(datazen, "/job", json.dumps(reader(SystemName=5)))
    assert_datazen_error(response, 400, "SystemName")


@pytest.mark.parametrize("max_length", [{"a": 1}, [1], 1e999, "many"])
def test_a_max_length_that_is_not_a_number_is_400(datazen: APIClient, max_length: Any) -> None:
    column = {
        "Name": "DataDynamicColumn",
        "ColumnName": "x",
        "DataType": "String",
        "SQLExpression": "'a'",
        "MaxLength": max_length,
    }
    body = json.dumps(reader(PipelineDef=[column])).replace("Infinity", "1e999")
    response = post_raw(datazen, "/job", body)
    assert_datazen_error(response, 400, "Pipeline step 1 (DataDynamicColumn)")


def test_put_job_with_a_writer_only_and_no_guid_is_400(datazen: APIClient) -> None:
    body = {"JobWriter": {"JobKey": "w", "ConnectionString": "db", "SourceJobKey": "r1"}}
    response = post_raw(datazen, "/job", json.dumps(body), method="put")
    assert_datazen_error(response, 400, "JobWriter.Guid is required")


def test_a_job_key_equal_to_a_dataflux_flow_name_is_409(datazen: APIClient) -> None:
    # given: a DataFlux flow named "clash"
    make_user("ann")
    assert upload(basic_client("ann"), "Determine_Gender.ddf").status_code == 200
    flow_name = Job.objects.get().job_key
    # when
    response = post_raw(datazen, "/job", json.dumps(reader(JobKey=flow_name)))
    # then
    assert_datazen_error(response, 409, "DataFlux job flow")


def test_an_unexpected_failure_is_still_json_not_html(
    datazen: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs import definitions

    def broken(body: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(definitions, "create_job", broken)
    response = post_raw(datazen, "/job", json.dumps(reader()))
    assert_datazen_error(response, 500, "failed to process")
    assert b"boom" not in response.content


# -- regular expressions -------------------------------------------------------------------


def test_a_catastrophic_regex_runs_in_linear_time() -> None:
    # given: the pattern, which froze the embedded gateway with Python's re
    pipeline = compile_pipeline(
        [{"Name": "DataFilter", "FilterType": 3, "Column": "v", "Filter": "^(a+)+$"}]
    )
    batch = Batch([Column("v")], [("a" * 31 + "!",), ("a" * 5000 + "!",), ("aaaa",)])
    # when
    started = time.perf_counter()
    kept = pipeline.apply(batch).rows
    # then
    assert time.perf_counter() - started < 0.5
    assert kept == [("aaaa",)]


@pytest.mark.parametrize("pattern", [r"(a)\1", r"a(?=b)", r"(?<!x)y"])
def test_patterns_that_need_backtracking_are_refused_when_defined(pattern: str) -> None:
    with pytest.raises(PipelineError, match="linear time"):
        compile_pipeline(
            [{"Name": "DataFilter", "FilterType": 3, "Column": "v", "Filter": pattern}]
        )


def test_a_backtracking_pattern_in_a_job_definition_is_400(datazen: APIClient) -> None:
    step = {"Name": "DataFilter", "FilterType": 3, "Column": "v", "Filter": r"(a)\1"}
    response = post_raw(datazen, "/job", json.dumps(reader(PipelineDef=[step])))
    assert_datazen_error(response, 400, "linear time")


def test_regexp_in_a_jobs_sqlite_sql_runs_in_linear_time(tmp_path: Any) -> None:
    from jobs.systems.db.url import create_db_engine

    engine = create_db_engine("", f"sqlite:///{tmp_path / 'job.sqlite3'}")
    started = time.perf_counter()
    with engine.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT ? REGEXP '^(a+)+$', 'abc' REGEXP 'b'", ("a" * 5000 + "!",)
        ).one()
    assert time.perf_counter() - started < 0.5
    assert tuple(found) == (0, 1)

"""Pipelines and triggers in real sync runs: SQLite source → reader pipeline → writer → target."""

from __future__ import annotations

import hashlib
import json

import pytest

from jobs.models import Execution, ExecutionStatus, Job, JobKind
from tests.syncdb import direct_job, execute, messages, rows, run

pytestmark = pytest.mark.django_db

READER_PIPELINE = [
    {
        "ColumnName": "Engine",
        "DataType": "String",
        "ExpressionType": "SQL Expression (SQL Only)",
        "SQLExpression": "'DATAZEN'",
        "MaxLength": 0,
        "IgnoreIfExists": False,
        "Name": "DataDynamicColumn",
        "Disabled": False,
    },
    {"Name": "DataFilter", "FilterType": 0, "Filter": "qty >= 50", "Disabled": False},
    {"Name": "DataHashing", "Algorithm": "MD5", "Columns": "name", "Disabled": False},
]
# Writers' PipelineDef arrives JSON-encoded in real exports.
WRITER_PIPELINE = json.dumps(
    [
        {
            "ColumnName": "loaded_on",
            "DataType": "DateTime",
            "ExpressionType": "Enzo Expression (Enzo Functions)",
            "SQLExpression": "#utcnow()",
            "MaxLength": -1,
            "IgnoreIfExists": False,
            "Name": "DataDynamicColumn",
            "Disabled": False,
        }
    ]
)


@pytest.fixture
def source(sqlite_url: str) -> str:
    execute(sqlite_url, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
    execute(
        sqlite_url,
        "INSERT INTO items VALUES (:id, :name, :qty)",
        params=[{"id": i, "name": f"item {i}", "qty": i} for i in range(100)],
    )
    return sqlite_url


def test_reader_and_writer_pipelines_shape_what_reaches_the_target(source, tmp_path) -> None:
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    job = direct_job(
        source,
        target,
        sql="SELECT * FROM items",
        target="items",
        reader={"PipelineDef": READER_PIPELINE},
        writer={"PipelineDef": WRITER_PIPELINE},
    )
    execution = run(job)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    landed = rows(target, "items")
    assert [row[0] for row in landed] == list(range(50, 100))
    first = landed[0]
    assert first[1] == hashlib.md5(b"item 50").hexdigest()
    assert first[3] == "DATAZEN"
    assert first[4] is not None  # loaded_on, from the writer's Enzo expression


def test_a_run_sql_component_without_its_connection_fails_the_run_naming_it(
    source, tmp_path
) -> None:
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    run_sql = {"Name": "DataRunSQL", "SQLCommand": "SELECT * FROM @pipelinedata()"}
    job = direct_job(
        source, target, sql="SELECT * FROM items", target="items",
        reader={"PipelineDef": [run_sql]},
    )  # fmt: skip
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert "DataRunSQL" in execution.error_message
    assert "ConnectionKey" in execution.error_message


def test_a_direct_job_triggers_the_next_job_once_with_data(source, tmp_path) -> None:
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    follow = Job.objects.create(kind=JobKind.READER, job_key="follow-up")
    job = direct_job(
        source,
        target,
        sql="SELECT * FROM items",
        target="items",
        json_data={
            "JobTriggersEnabled": True,
            "JobTriggers": [{"JobKey": "follow-up", "TriggerType": "OnSuccessWithData"}],
        },
    )
    execution = run(job)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    (triggered,) = Execution.objects.filter(job=follow)
    assert triggered.options["triggered_by"] == execution.guid
    assert triggered.options["trigger_chain"] == [job.guid]
    assert "Trigger OnSuccessWithData: started 'follow-up'." in messages(execution)
    # a second run finds no changes: "with data" does not fire again
    Job.objects.filter(pk=follow.pk).update(status="ready")
    assert run(job).status == ExecutionStatus.SUCCEEDED
    assert Execution.objects.filter(job=follow).count() == 1

"""The connector boundary: which system serves a job, and what a run refuses by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.connections import UnknownConnection
from jobs.models import ConnectionString, ConnectionType, ExecutionStatus, Job, JobKind
from jobs.sync.spec import ReaderSpec, SpecError, WriterSpec, flag
from jobs.systems import registry
from jobs.systems.base import Connection, Pushdown, UnsupportedSystem
from jobs.systems.db import DatabaseReader, DatabaseSystem
from tests.processes import free_port
from tests.syncdb import direct_job, execute, rows, run

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "fixtures" / "datazen"


@pytest.fixture
def target_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.sqlite3'}"


def test_a_database_connection_is_served_by_the_db_connector(sqlite_url: str) -> None:
    # given a stored DB connection string
    ConnectionString.objects.create(
        key="films", system="SQLite", connection_type=ConnectionType.DB, value=sqlite_url
    )
    # when
    connection = registry.resolve("films")
    # then
    assert isinstance(registry.system_for(connection), DatabaseSystem)
    assert registry.check(connection) == "sqlite answers"


def test_a_worker_loads_no_connector_library_until_it_opens_that_kind(tmp_path: Path) -> None:
    # given a fresh process that loads what a worker loads (Django, the tasks, the engine)
    code = (
        "import django, sys; django.setup(); import jobs.tasks, jobs.sync.run, jobs.admin; "
        # (pyarrow is the database path's too: PostgreSQL COPY rows, change-log P frames)
        "print(sorted(m for m in ('fsspec', 'httpx', 'pika', 'paho', 'nats') "
        "if m in sys.modules))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gateway.settings_test",
        "GATEWAY_DATA_DIR": str(tmp_path),
    }
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")[-2]
    # then none of the drive, HTTP and broker libraries is in it
    assert loaded == "[]"
    # and every registered kind still has its connector
    for kind in registry.CONNECTORS:
        assert registry.system_for(Connection(None, "", kind, "")) is not None


@pytest.mark.parametrize(("operator_value", "pool"), [(None, "jemalloc"), ("system", "system")])
def test_arrow_buffers_come_from_jemalloc_unless_the_operator_says(
    tmp_path: Path, operator_value: str | None, pool: str
) -> None:
    # given a fresh process that loads what a worker loads (pyarrow with the engine)
    code = (
        "import django; django.setup(); import jobs.tasks, jobs.sync.run, jobs.admin; "
        "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gateway.settings_test",
        "GATEWAY_DATA_DIR": str(tmp_path),
    }
    env.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    if operator_value is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = operator_value
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")[-2]
    # then pyarrow allocates with jemalloc (mimalloc kept freed segments resident), or with
    # the allocator the operator named
    assert loaded == pool


def test_a_system_without_a_connector_is_refused_naming_it() -> None:
    # given a stored big-data connection (no connector yet)
    ConnectionString.objects.create(
        key="bus", system="Hadoop", connection_type=ConnectionType.BIGDATA, value="hdfs://x"
    )
    # when / then
    with pytest.raises(UnsupportedSystem, match="systems are not supported"):
        registry.system_for(registry.resolve("bus"))


def test_an_unknown_key_of_an_http_reader_says_no_connection_has_it() -> None:
    spec = ReaderSpec.parse(
        {
            "JobKey": "r",
            "ConnectionString": "enzo9550",
            "JsonData": {"HttpSourceSettings": {"A": 1}},
        }
    )
    with pytest.raises(UnknownConnection, match="No connection string has the key 'enzo9550'"):
        registry.open_reader(spec)


@pytest.mark.parametrize("sample", ["getAccount.json", "form_getAllForms.json"])
def test_the_vendors_http_exports_call_their_connection_and_say_why_they_fail(
    sample: str,
) -> None:
    # given a vendor export whose reader calls a stored HTTP connection nobody answers on
    body = json.loads((SAMPLES / sample).read_text())
    reader_def = body["JobReader"]
    closed = f"http://127.0.0.1:{free_port()}"
    ConnectionString.objects.create(
        key=reader_def["ConnectionString"],
        system="HTTP",
        connection_type=ConnectionType.HTTP,
        value=json.dumps({"service": "http", "baseUrl": closed, "maxRetries": 0}),
    )
    job = Job.objects.create(
        kind=JobKind.READER, job_key=reader_def["JobKey"], definition=reader_def
    )
    # when
    execution = run(job)
    # then the run fails with the request and the reason, never "has no SqlRead"
    assert execution.status == ExecutionStatus.FAILED
    assert f"POST {closed}{reader_def['JsonData']['HttpSourceSettings']['HTTPURI']}" in (
        execution.error_message
    )
    assert "cannot connect" in execution.error_message


def test_a_dynamic_parameter_fails_the_run_instead_of_reading_nothing(
    sqlite_url: str, target_url: str
) -> None:
    # given a reader whose SQL depends on a DynamicParameter the engine cannot honour
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, rating INTEGER)")
    job = direct_job(
        sqlite_url,
        target_url,
        sql="SELECT * FROM films WHERE rating = '{{@param.rating}}'",
        target="films_copy",
        json_data={"DynamicParameter": {"data": "SELECT 5 AS rating", "connection": "x"}},
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert "DynamicParameter" in execution.error_message
    assert "does not support" in execution.error_message


def test_an_upsert_script_on_a_database_target_is_refused_not_ignored(
    sqlite_url: str, target_url: str
) -> None:
    # given
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(sqlite_url, "INSERT INTO films VALUES (1, 'a')")
    job = direct_job(
        sqlite_url,
        target_url,
        sql="SELECT * FROM films",
        target="films_copy",
        writer={"UpsertScript": "UPDATE films_copy SET title = '{{title}}'"},
    )
    # when
    execution = run(job)
    # then the writer fails naming the setting, and the target has nothing
    assert execution.status == ExecutionStatus.FAILED
    assert "UpsertScript" in execution.error_message
    with pytest.raises(Exception, match="no such table"):
        rows(target_url, "films_copy")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        ("1", True),
        (1, True),
        ("yes", True),
        (None, False),
        (False, False),
        ("false", False),
        ("0", False),
        ("", False),
    ],
)
def test_one_boolean_rule_for_every_definition_field(value: object, expected: bool) -> None:
    assert flag(value) is expected


def test_a_boolean_field_that_is_not_one_is_refused_with_its_name() -> None:
    with pytest.raises(SpecError, match=r"JobWriter.PropagateDelete must be true or false"):
        WriterSpec.parse({"PropagateDelete": "maybe"})


def test_json_data_as_a_string_is_read_like_an_object() -> None:
    as_object = ReaderSpec.parse({"JsonData": {"TopNOverride": 5, "KeepChangedLogFiles": False}})
    as_text = ReaderSpec.parse({"JsonData": '{"TopNOverride": 5, "KeepChangedLogFiles": false}'})
    assert as_object == as_text
    assert as_text.top_n == 5 and not as_text.keep_logs


def test_a_reader_that_cannot_filter_on_the_pointer_gets_the_same_changes(
    sqlite_url: str, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a source read by the timestamp strategy, by a reader that cannot push `since` down
    monkeypatch.setattr(DatabaseReader, "pushdown", Pushdown(since=False))
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT, ts INTEGER)")
    execute(
        sqlite_url,
        "INSERT INTO films VALUES (:id, :title, :ts)",
        params=[{"id": i, "title": f"f{i}", "ts": 100 + i // 2} for i in range(1, 11)],
    )
    job = direct_job(
        sqlite_url, target_url, sql="SELECT * FROM films", target="copy", timestamp_col="ts"
    )
    assert run(job).status == ExecutionStatus.SUCCEEDED
    # when rows change at, past and before the pointer (105)
    execute(
        sqlite_url,
        "UPDATE films SET title = 'new' WHERE id = 10",  # ts 105: at the pointer, changed
        "INSERT INTO films VALUES (11, 'late', 106)",  # past the pointer
        "UPDATE films SET title = 'old' WHERE id = 1",  # before it: not seen, as in SQL
    )
    second = run(job)
    # then exactly what a WHERE ts >= 105 would have sent went through
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert second.record_count == 2
    assert rows(target_url, "copy")[-2:] == [(10, "new", 105), (11, "late", 106)]
    assert rows(target_url, "copy")[0] == (1, "f1", 100)

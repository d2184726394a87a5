"""DataRunSQL: the batch as @pipelinedata() on a database connection, T-SQL translated."""

from __future__ import annotations

import pytest

from jobs.models import ConnectionString, ConnectionType, ExecutionStatus
from jobs.pipeline import PipelineError, compile_pipeline
from jobs.systems.batch import Batch, Column
from tests.syncdb import direct_job, execute, messages, rows, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def lookup(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'lookup.sqlite3'}"
    execute(url, "CREATE TABLE labels (id TEXT, label TEXT)", "CREATE TABLE audit (id TEXT)")
    execute(url, "INSERT INTO labels VALUES ('1', 'one'), ('2', 'two'), ('2', 'deux')")
    ConnectionString.objects.create(
        key="lookup", system="SQLite", connection_type=ConnectionType.DB, value=url
    )
    return url


def items() -> Batch:
    return Batch([Column("id", "integer"), Column("name")], [(1, "a"), (2, "b"), (3, "c")])


def step(sql: str, **config: object) -> dict[str, object]:
    return {"Name": "DataRunSQL", "SQLCommand": sql, "ConnectionKey": "lookup",
            "ReplaceDataSet": True, **config}  # fmt: skip


def test_the_result_replaces_the_batch_and_input_columns_keep_their_types(lookup) -> None:
    # given T-SQL as the exports write it: TOP, [brackets], ISNULL, a subquery
    pipeline = compile_pipeline([step(
        "SELECT T.*, ISNULL((SELECT TOP 1 [label] FROM labels L WHERE L.id = T.id "
        "ORDER BY [label]), 'none') AS label FROM @pipelinedata() T ORDER BY T.id"
    )])  # fmt: skip
    # when
    out = pipeline.apply(items())
    # then
    assert out.names == ["id", "name", "label"]
    assert [c.type for c in out.columns] == ["integer", "string", "string"]
    assert out.rows == [(1, "a", "one"), (2, "b", "deux"), (3, "c", "none")]


def test_without_replace_the_sql_runs_and_the_batch_goes_on(lookup) -> None:
    pipeline = compile_pipeline(
        [step("INSERT INTO audit SELECT id FROM @pipelinedata()", ReplaceDataSet=False)]
    )
    assert pipeline.apply(items()).rows == items().rows
    assert rows(lookup, "audit") == [("1",), ("2",), ("3",)]


def test_sql_that_cannot_be_translated_fails_naming_the_construct(lookup) -> None:
    pipeline = compile_pipeline(
        [step("SELECT * FROM @pipelinedata() T CROSS APPLY OPENXML(T.name, '/r') B")]
    )
    with pytest.raises(PipelineError, match=r"DataRunSQL.*OPENXML\(\) is SQL Server only"):
        pipeline.apply(items())


def test_select_star_over_openjson_is_refused_where_its_columns_are_rewritten(lookup) -> None:
    # SQLite's json_each has more columns than OPENJSON's key, value and type
    pipeline = compile_pipeline(
        [step("SELECT * FROM @pipelinedata() T CROSS APPLY OPENJSON(T.name) B")]
    )
    with pytest.raises(PipelineError, match=r"SELECT \* over OPENJSON"):
        pipeline.apply(items())


def test_ignore_on_error_lets_the_batch_through(lookup) -> None:
    pipeline = compile_pipeline([step("SELECT nope FROM @pipelinedata()", IgnoreOnError=True)])
    assert pipeline.apply(items()).rows == items().rows


def test_a_failing_statement_fails_the_run_with_the_databases_words(lookup, tmp_path) -> None:
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    execute(source, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    execute(source, "INSERT INTO items VALUES (1, 'a')")
    job = direct_job(
        source, f"sqlite:///{tmp_path / 't.sqlite3'}", sql="SELECT * FROM items", target="items",
        reader={"PipelineDef": [step("SELECT nope FROM @pipelinedata()")]},
    )  # fmt: skip
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert "DataRunSQL" in execution.error_message
    assert "no such column: nope" in execution.error_message, messages(execution)


def test_a_run_sql_step_in_a_reader_shapes_what_reaches_the_target(lookup, tmp_path) -> None:
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    target = f"sqlite:///{tmp_path / 't.sqlite3'}"
    execute(source, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    execute(source, "INSERT INTO items VALUES (1, 'a'), (3, 'c')")
    sql = ("SELECT T.id, T.name, MIN(L.label) AS label FROM @pipelinedata() T "
           "LEFT JOIN labels L ON L.id = T.id GROUP BY T.id, T.name")  # fmt: skip
    job = direct_job(source, target, sql="SELECT * FROM items", target="items",
                     reader={"PipelineDef": [step(sql)]})  # fmt: skip
    assert run(job).status == ExecutionStatus.SUCCEEDED
    assert rows(target, "items") == [(1, "a", "one"), (3, "c", None)]

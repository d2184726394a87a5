"""SQL Server connections (mssql dialect, python-tds): URL forms, generated DDL and SQL, the
T-SQL translation. No SQL Server runs here: the live test needs GATEWAY_TEST_MSSQL_URL."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine
from sqlalchemy.schema import CreateTable

from jobs.systems.batch import Column
from jobs.systems.db.tsql import TranslationError, translate, translate_query
from jobs.systems.db.url import to_url
from jobs.systems.db.writer import Target, _new_table, _Statements
from tests.syncdb import direct_job, execute, run

MSSQL = create_engine("mssql+pytds://sa:pw@db.example:1433/sales")  # never connects


@pytest.mark.parametrize(
    ("system", "value", "url"),
    [
        ("SQLServer", "Server=tcp:db.example,1433;Database=sales;User Id=app;Password=p@ss;",
         "mssql+pytds://app:p%40ss@db.example:1433/sales"),
        ("", "Data Source=db.example,1433;Initial Catalog=sales;User ID=app;Password=x",
         "mssql+pytds://app:x@db.example:1433/sales"),
        ("SQL Server", "Server=db.example;Database=sales;Uid=app;Pwd=x;Encrypt=True",
         "mssql+pytds://app:x@db.example/sales"),
        ("", "mssql://app:x@db.example/sales", "mssql+pytds://app:x@db.example/sales"),
    ],
)  # fmt: skip
def test_sql_server_connection_strings_become_pytds_urls(system, value, url) -> None:
    assert to_url(system, value).render_as_string(hide_password=False) == url


def test_a_created_target_has_indexable_key_columns() -> None:
    table = _new_table(
        "datamodels",
        "form",
        [Column("id"), Column("name"), Column("n", "integer")],
        ["id"],
        "mssql",
    )
    ddl = str(CreateTable(table).compile(dialect=MSSQL.dialect))
    assert "id NVARCHAR(450) NOT NULL" in ddl
    assert "name NVARCHAR(max) NULL" in ddl
    assert "PRIMARY KEY (id)" in ddl and "form.datamodels" in ddl


def test_upserts_are_one_merge_statement_per_row() -> None:
    table = _new_table("t", None, [Column("id"), Column("v")], ["id"], "mssql")
    sql = _Statements(MSSQL, Target(table, ["id", "v"], True), ["id"]).upsert()
    assert sql == (
        "MERGE t WITH (HOLDLOCK) AS t USING (SELECT %s AS id, %s AS v) AS s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET t.v = s.v WHEN NOT MATCHED THEN INSERT (id, v) "
        "VALUES (s.id, s.v);"
    )


def test_t_sql_goes_to_sql_server_unchanged_and_is_translated_elsewhere() -> None:
    sql = "SELECT TOP 1 [key], ISNULL([value], '') FROM form.x"
    assert translate(sql, "mssql") == sql
    assert translate(sql, "postgresql") == (
        'SELECT "key", COALESCE("value", \'\') FROM "form"."x" LIMIT 1'
    )
    assert translate(sql, "mysql") == "SELECT `key`, COALESCE(`value`, '') FROM `form`.`x` LIMIT 1"


def test_markup_built_in_t_sql_goes_to_sql_server_with_its_data_escaped() -> None:
    # (generated text only: no SQL Server here, docs/connections.md)
    got = translate_query("SELECT '<id>' + CAST(x AS NVARCHAR(9)) + '</id>' AS n FROM t", "mssql")
    assert got.markup == {"n"}
    assert got.sql == (
        "SELECT '<id>' + REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(CAST(x AS NVARCHAR(9)), '&', "
        "'&amp;'), '<', '&lt;'), '>', '&gt;'), '\"', '&quot;'), '''', '&apos;') + '</id>' AS n "
        "FROM t"
    )


def test_what_cannot_be_translated_is_named() -> None:
    with pytest.raises(TranslationError, match=r"OPENXML\(\) is SQL Server only"):
        translate("SELECT * FROM t CROSS APPLY OPENXML(t.j, '/r') B", "postgresql")
    with pytest.raises(TranslationError, match="cannot read the T-SQL"):
        translate("SELECT FROM WHERE", "sqlite")


@pytest.mark.django_db
@pytest.mark.skipif(
    not os.environ.get("GATEWAY_TEST_MSSQL_URL"),
    reason="GATEWAY_TEST_MSSQL_URL is not set: no SQL Server to test against here",
)
def test_a_direct_job_writes_to_a_live_sql_server(sqlite_url: str) -> None:
    target = os.environ["GATEWAY_TEST_MSSQL_URL"]
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(sqlite_url, "INSERT INTO films VALUES (1, 'a'), (2, 'b')")
    job = direct_job(sqlite_url, target, sql="SELECT * FROM films", target="gw_films_test")
    assert run(job).status == "succeeded"
    execute(sqlite_url, "UPDATE films SET title = 'c' WHERE id = 2")
    assert run(job).status == "succeeded"

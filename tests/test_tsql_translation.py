"""T-SQL translated and run on SQLite, PostgreSQL and MariaDB: OPENJSON in its forms, names
in any case, `+` on text, and markup built by SQL (jobs.systems.db.tsql)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from jobs.models import ExecutionStatus
from jobs.systems.db.tsql import TranslationError, catalogue_for, translate, translate_query
from jobs.systems.http.template import render_row, xml_escape
from tests.syncdb import direct_job, rows
from tests.syncdb import run as run_job

DOCS = [
    (1, json.dumps({"a": 1, "b": "x<y", "c": {"d": [1, 2]}, "e": None, "f": True,
                    "items": [{"n": "p"}, {"n": "q"}]})),
    (2, json.dumps([{"a": 2, "b": "two"}, {"a": 3, "b": None}])),
]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def url(request: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{request.getfixturevalue('tmp_path') / 't.db'}"
    else:
        yield request.getfixturevalue(
            {"postgresql": "postgres_url"}.get(request.param, "mariadb_url")
        )


def run(url: str, tsql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.begin() as db:
            db.execute(text("CREATE TABLE IF NOT EXISTS Docs (id INT, doc TEXT)"))
            if not db.execute(text("SELECT COUNT(*) FROM Docs")).scalar():
                db.execute(
                    text("INSERT INTO Docs VALUES (:id, :doc)"),
                    [{"id": i, "doc": d} for i, d in DOCS],
                )
            sql = translate(tsql, engine.dialect.name, catalogue=catalogue_for(db))
            return sorted((tuple(r) for r in db.execute(text(sql))), key=repr)
    finally:
        engine.dispose()


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_openjson_default_schema_gives_key_value_type_as_sql_server(url: str) -> None:
    got = run(url, "SELECT d.id, j.[Key], j.[VALUE], j.[type] FROM [docs] d "
                   "CROSS APPLY OPENJSON( (SELECT d.Doc) ) j")  # fmt: skip
    plain = {(i, k, v, int(t)) for i, k, v, t in got if int(t) not in (4, 5)}
    nested = {(i, str(k), json.dumps(as_json(v)), int(t)) for i, k, v, t in got if int(t) in (4, 5)}
    assert plain == {(1, "a", "1", 2), (1, "b", "x<y", 1), (1, "e", None, 0), (1, "f", "true", 3)}
    assert nested == {
        (1, "c", '{"d": [1, 2]}', 5),
        (1, "items", '[{"n": "p"}, {"n": "q"}]', 4),
        (2, "0", '{"a": 2, "b": "two"}', 5),
        (2, "1", '{"a": 3, "b": null}', 5),
    }


def test_openjson_with_schema_paths_and_as_json(url: str) -> None:
    got = run(
        url,
        "SELECT d.id, j.a, j.b, j.c FROM docs d CROSS APPLY OPENJSON(d.doc) "
        "WITH (a int '$.a', b nvarchar(50) '$.b', c nvarchar(max) '$.c' AS JSON) j",
    )
    assert [(i, a, b, as_json(c)) for i, a, b, c in got] == [
        (1, 1, "x<y", {"d": [1, 2]}),
        (2, 2, "two", None),
        (2, 3, None, None),
    ]


def test_outer_apply_openjson_on_a_path_keeps_rows_without_one(url: str) -> None:
    got = run(url, "SELECT d.id, n FROM docs d OUTER APPLY OPENJSON(d.doc, '$.items') "
                   "WITH (n nvarchar(10))")  # fmt: skip
    assert got == [(1, "p"), (1, "q"), (2, None)]


def test_markup_built_by_sql_escapes_the_data_spliced_into_it(url: str) -> None:
    # given T-SQL building an element around a value that is itself markup
    tsql = (
        "SELECT d.id, '<b>' + j.b + '</b>' AS xml, j.b AS plain FROM docs d "
        "CROSS APPLY OPENJSON(d.doc) WITH (b nvarchar(50)) j WHERE d.id = 1"
    )
    # when translated and run
    got = run(url, tsql)
    # then the column is markup, its data escaped; the plain column is the data as it is
    assert got == [(1, "<b>x&lt;y</b>", "x<y")]
    assert translate_query(tsql, "sqlite").markup == {"xml"}


def test_a_template_inserts_sql_markup_as_is_and_escapes_every_other_value() -> None:
    row = {"xmlEntries": "<entry><key>k</key></entry>", "name": "</x><evil/>"}
    body = "<a>{{xmlEntries}}</a><n>{{name}}</n>"
    assert render_row(body, row, xml_escape, "t", frozenset({"xmlentries"})) == (
        "<a><entry><key>k</key></entry></a><n>&lt;/x&gt;&lt;evil/&gt;</n>"
    )
    # without the column being markup (no SQL wrote it), the same value is escaped
    assert render_row(body, row, xml_escape, "t").startswith("<a>&lt;entry&gt;")


@pytest.mark.parametrize(
    ("tsql", "named"),
    [
        ("SELECT * FROM t CROSS APPLY OPENXML(@h, '/r') x", "OPENXML"),
        ("SELECT * FROM OPENJSON(@json) WITH (a int)", "@json"),
        ("SELECT x FROM t CROSS APPLY OPENJSON(t.j, 'strict $.a') o", "strict"),
        ("SELECT OPENJSON(t.j) FROM t", "OPENJSON() outside FROM"),
        ("SELECT STUFF((SELECT ',' + x FROM t FOR XML PATH('')), 1, 1, '')", "FOR XML"),
    ],
)
@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_what_has_no_translation_is_named(tsql: str, named: str, dialect: str) -> None:
    with pytest.raises(TranslationError, match=named.replace("(", r"\(").replace(")", r"\)")):
        translate(tsql, dialect)


def test_text_with_a_less_than_sign_is_not_markup() -> None:
    got = translate_query("SELECT 'x < ' + name AS label, 'a<b' + name AS other FROM t", "sqlite")
    assert got.markup == frozenset()
    assert got.sql == "SELECT 'x < ' || name AS label, 'a<b' || name AS other FROM t"


@pytest.mark.django_db
def test_a_sql_server_readers_sqlread_is_translated_or_refused_naming_why(tmp_path: Any) -> None:
    # given a SQLite source, and readers whose SystemName says their SqlRead is T-SQL
    source, target = f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 't.db'}"
    engine = create_engine(source)
    with engine.begin() as db:
        db.execute(text("CREATE TABLE People (Id INTEGER PRIMARY KEY, Name TEXT)"))
        db.execute(text("INSERT INTO People VALUES (1, 'Ada'), (2, 'Grace')"))
    engine.dispose()
    tsql = "SELECT TOP 10 [id], [NAME] + ' (' + 'x' + ')' AS label FROM [dbo].[people]"
    good = direct_job(source, target, sql=tsql, target="out", reader={"SystemName": "SQLServer"})
    bad = direct_job(
        source, target, sql="SELECT name FROM people FOR XML PATH('')", target="out2",
        reader={"SystemName": "SQLServer"},
    )  # fmt: skip
    # when they run
    ran, refused = run_job(good), run_job(bad)
    # then the first read its rows, the second failed naming what has no translation
    assert ran.status == ExecutionStatus.SUCCEEDED, ran.error_message
    assert rows(target, "out") == [(1, "Ada (x)"), (2, "Grace (x)")]
    assert refused.status == ExecutionStatus.FAILED
    assert "SqlRead" in refused.error_message and "FOR XML is SQL Server only" in (
        refused.error_message
    )

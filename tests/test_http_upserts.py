"""The vendor's two `UPSERT_DataModel*` exports, unmodified, on SQLite, PostgreSQL and MariaDB.

They read SQL Server (`SystemName` SQLServer: a T-SQL `SqlRead` on a view the customer writes,
`vAllModelJSON`/`vTerritoryJSON`) and build form.com's SOAP bodies in T-SQL
(`CROSS APPLY OpenJSON`, `STRING_AGG`, `+` on text) spliced into the body by `{{xmlEntries}}`.
Here `sql` is each of the gateway's own databases: jobs.systems.db.tsql translates both.
form.com is tests/formservice.py; `form.datamodels`/`form.datamodelobjects` are filled by the
vendor's own `form_surveyGetALLModels`/`form_surveyGetALLModelObjects` exports first, as in a
real deployment, so that existing objects are edited and new ones added.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from jobs.models import ConnectionString, ConnectionType, ExecutionStatus, Job
from tests.formservice import FormService, serving
from tests.syncdb import messages, run
from tests.test_http_exports import CUSTOMERS, TERRITORIES, service_data

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "datazen"
VIEWS = {
    "UPSERT_DataModelObjects": "vAllModelJSON",
    "UPSERT_DataModelObject_Territory": "vTerritoryJSON",
}
EVIL = "</value></entry><evil/>"  # a source value that would end the element if spliced raw


def source_rows() -> list[dict[str, str]]:
    """What the customer's view returns: one existing customer changed, one new customer whose
    city is markup, one new territory."""

    def row(model: str, key_name: str, key: str, **props: str) -> dict[str, str]:
        data = {
            "_modelid_": model,
            "_keyid_": key,
            "_model_keyname_": key_name,
            key_name: key,
            **props,
        }
        return {
            "_keyid_": key,
            "_modelid_": model,
            "_model_keyname_": key_name,
            "jsonData": json.dumps(data),
        }

    return [
        row(CUSTOMERS, "CustomerNumber", "C-1", City="Paris 8e"),
        row(CUSTOMERS, "CustomerNumber", "C-3", City=EVIL),
        row(TERRITORIES, "Code", "T-S", Size="7"),
    ]  # fmt: skip


@contextmanager
def sql_database(kind: str, request: Any) -> Iterator[str]:
    """The `sql` connection's database, with the `form` schema the exports write to."""
    if kind == "sqlite":
        yield f"sqlite:///{request.getfixturevalue('tmp_path') / 'sql.db'}"  # no schemas
        return
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url)
        with engine.begin() as db:
            db.execute(text("CREATE SCHEMA form"))
        engine.dispose()
        yield url
        return
    url = request.getfixturevalue("mariadb_url")
    # On MariaDB a schema is a database, one per server: `form` is shared, so it is held by a
    # named lock for the test's length and dropped afterwards.
    engine = create_engine(url)
    with engine.connect() as lock:
        got = lock.execute(text("SELECT GET_LOCK('http_upserts_form', 600)")).scalar()
        assert got == 1
        lock.execute(text("DROP DATABASE IF EXISTS form"))
        lock.execute(text("CREATE DATABASE form CHARACTER SET utf8mb4"))
        try:
            yield url
        finally:
            lock.execute(text("DROP DATABASE IF EXISTS form"))
            lock.execute(text("SELECT RELEASE_LOCK('http_upserts_form')"))
    engine.dispose()


def post(datazen: Any, name: str) -> Job:
    body = json.loads((SAMPLES / f"{name}.json").read_text())
    response = datazen.post("/job", body, format="json")
    assert response.status_code == 200, response.content
    return Job.objects.get(job_key=name, kind="reader")


def run_ok(job: Job) -> None:
    execution = run(Job.objects.get(pk=job.pk))
    assert execution.status == ExecutionStatus.SUCCEEDED, (
        execution.error_message,
        messages(execution),
    )


def replace_source(url: str, rows: list[dict[str, str]]) -> None:
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("DELETE FROM upsert_source"))
        db.execute(
            text(
                "INSERT INTO upsert_source "
                "VALUES (:_keyid_, :_modelid_, :_model_keyname_, :jsonData)"
            ),
            rows,
        )
    engine.dispose()


def create_views(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as db:
        # jsonData is text, as a view built with FOR JSON returns it on SQL Server.
        db.execute(text(
            "CREATE TABLE upsert_source (_keyid_ VARCHAR(255), _modelid_ BIGINT, "
            "_model_keyname_ VARCHAR(255), jsonData TEXT)"
        ))  # fmt: skip
        for export, view in VIEWS.items():
            model = CUSTOMERS if export == "UPSERT_DataModelObjects" else TERRITORIES
            # Unquoted: PostgreSQL folds the name; the export's `vAllModelJSON` still finds it.
            db.execute(text(
                f"CREATE VIEW {view} AS SELECT * FROM upsert_source WHERE _modelid_ = {model}"
            ))  # fmt: skip
    engine.dispose()


def objects(service: FormService, model: str) -> dict[str, dict[str, str]]:
    return {
        o["properties"][o["keyFieldName"]]: o["properties"] for o in service.objects.get(model, [])
    }


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_the_upsert_exports_add_and_edit_form_com_objects(
    datazen: Any, request: Any, kind: str, settings: Any, tmp_path: Path
) -> None:
    # The exports' change logs go to their `Path` (C:\Tmp) under the data directory: one of
    # its own per database, or the next one's writers would apply this one's logs too.
    settings.DATA_DIR = tmp_path / "data"
    service = service_data()
    with serving(service) as form_com, sql_database(kind, request) as sql:
        # given form.com's models and objects replicated by the vendor's own exports
        ConnectionString.objects.create(
            key="form_noToken", system="HTTP", connection_type=ConnectionType.HTTP,
            value=json.dumps({"service": "http", "baseUrl": form_com, "authType": "none"}),
        )  # fmt: skip
        system = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MySQL"}[kind]
        ConnectionString.objects.create(
            key="sql", system=system, connection_type=ConnectionType.DB, value=sql
        )
        replicas = [post(datazen, "form_surveyGetALLModels"),
                    post(datazen, "form_surveyGetALLModelObjects")]  # fmt: skip
        for job in replicas:
            run_ok(job)
        # and the customer's views, and the two upsert exports as they are
        create_views(sql)
        replace_source(sql, source_rows())
        upserts = [post(datazen, name) for name in VIEWS]
        # when both run
        for job in upserts:
            run_ok(job)
        # then C-1 was edited (object 9001), C-3 and T-S added, each with its properties
        assert objects(service, CUSTOMERS) == {
            "C-1": {"CustomerNumber": "C-1", "City": "Paris 8e"},
            "C-2": {"CustomerNumber": "C-2", "City": "Lyon & Co <x>"},
            "C-3": {"CustomerNumber": "C-3", "City": EVIL},
        }
        assert objects(service, TERRITORIES) == {
            "T-N": {"Code": "T-N", "Size": "4"},
            "T-S": {"Code": "T-S", "Size": "7"},
        }
        sent = [b for b in service.received if "ModelObject>" in b and "ByFilter" not in b]
        edits = [b for b in sent if "<aut:editModelObject>" in b]
        assert len(edits) == 1 and "<id>9001</id>" in edits[0]
        assert len([b for b in sent if "<aut:addModelObject>" in b]) == 2
        # the markup the SQL wrote went in as markup; the source value in it as text
        (evil,) = [b for b in sent if "C-3" in b]
        assert "<entry><key>City</key><value>&lt;/value&gt;&lt;/entry&gt;&lt;evil/&gt;" in evil
        assert "<evil/>" not in evil

        # given the replicas refreshed (C-3 now exists on form.com) and C-3 changed again
        for job in replicas:
            run_ok(job)
        rows = source_rows()
        rows[1]["jsonData"] = rows[1]["jsonData"].replace("</value>", "Nantes ")
        replace_source(sql, rows)
        before = len(service.received)
        # when the upserts run again
        for job in upserts:
            run_ok(job)
        # then only the changed row went out, as an edit of the object form.com created
        again = [b for b in service.received[before:] if "ModelObject>" in b]
        assert len(again) == 1 and "<aut:editModelObject>" in again[0]
        assert objects(service, CUSTOMERS)["C-3"]["City"] == EVIL.replace("</value>", "Nantes ")

"""The vendor's five HTTP-source exports, unmodified, against a local form.com-like service.

Their connection key `form_noToken` points at tests/formservice.py; the `sql` key at a fresh
PostgreSQL database. Targets in schema `form` are compared row by row with what the service
returned, then the service's data changes and a second run propagates it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from jobs.models import ConnectionString, ConnectionType, ExecutionStatus, Job
from jobs.sync.changelog import ChangeLogReader
from tests.formservice import FormService, serving
from tests.syncdb import messages, run

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "datazen"
EXPORTS = [
    "form_getAllForms",
    "form_surveyGetALLModels",
    "form_surveyGetALLModelObjects",
    "form_surveyGetObjects_Territory",
    "getAccount",
]
CUSTOMERS, TERRITORIES = "101", "12345678"
STRING = {"id": "1", "name": "STRING"}


def service_data() -> FormService:
    return FormService(
        forms=[
            {"versionId": "v1", "accountId": 6955196, "creationDate": "2024-01-02",
             "description": "First", "id": 1, "name": "intake", "title": "Intake"},
            {"versionId": "v3", "accountId": 6955196, "creationDate": "2024-02-03",
             "description": "Second", "id": 2, "name": "audit", "title": "Store audit"},
        ],
        models=[
            {"id": CUSTOMERS, "name": "Customers", "keyFieldName": "CustomerNumber",
             "columns": [
                 {"id": "c1", "name": "CustomerNumber", "columnType": STRING},
                 {"id": "c2", "name": "City", "columnType": {"id": "1", "name": "STRING"}},
             ]},
            {"id": TERRITORIES, "name": "Territories", "keyFieldName": "Code",
             "columns": [
                 {"id": "t1", "name": "Code", "columnType": {"id": "1", "name": "STRING"}},
                 {"id": "t2", "name": "Size", "columnType": {"id": "2", "name": "NUMBER"}},
             ]},
        ],
        objects={
            CUSTOMERS: [
                {"id": "9001", "keyFieldName": "CustomerNumber",
                 "properties": {"CustomerNumber": "C-1", "City": "Paris"}},
                {"id": "9002", "keyFieldName": "CustomerNumber",
                 "properties": {"CustomerNumber": "C-2", "City": "Lyon & Co <x>"}},
            ],
            TERRITORIES: [
                {"id": "7001", "keyFieldName": "Code", "properties": {"Code": "T-N", "Size": "4"}},
            ],
        },
        account={"accountId": 6955196, "login": "ops", "email": "ops@example.com"},
    )  # fmt: skip


@pytest.fixture
def service() -> FormService:
    return service_data()


@pytest.fixture
def form_com(service: FormService) -> Iterator[str]:
    with serving(service) as url:
        yield url


@pytest.fixture
def sql(postgres_url: str) -> Iterator[str]:
    engine = create_engine(postgres_url)
    with engine.begin() as db:
        db.execute(text("CREATE SCHEMA form"))  # as on the vendor's SQL Server
    engine.dispose()
    yield postgres_url


@pytest.fixture
def jobs(datazen: Any, form_com: str, sql: str) -> dict[str, Job]:
    ConnectionString.objects.create(
        key="form_noToken",
        system="HTTP",
        connection_type=ConnectionType.HTTP,
        value=json.dumps({"service": "http", "baseUrl": form_com, "authType": "none"}),
    )
    ConnectionString.objects.create(
        key="sql", system="PostgreSQL", connection_type=ConnectionType.DB, value=sql
    )
    found = {}
    for name in EXPORTS:
        body = json.loads((SAMPLES / f"{name}.json").read_text())
        response = datazen.post("/job", body, format="json")
        assert response.status_code == 200, response.content
        found[name] = Job.objects.get(job_key=name, kind="reader")
    return found


def query(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return [tuple(row) for row in db.execute(text(sql))]
    finally:
        engine.dispose()


def run_ok(job: Job) -> None:
    execution = run(job)
    assert execution.status == ExecutionStatus.SUCCEEDED, (
        execution.error_message,
        messages(execution),
    )


def expected_forms(service: FormService) -> set[tuple]:
    return {(f["id"], f["name"], f["title"], f["accountId"]) for f in service.forms}


def expected_models(service: FormService) -> set[tuple]:
    return {
        (c["id"], c["name"], c["columnType"]["name"], m["id"], m["keyFieldName"])
        for m in service.models
        for c in m["columns"]
    }


def expected_objects(service: FormService, model_ids: list[str]) -> set[tuple]:
    return {
        (int(model), o["id"], key, value, o["properties"][o["keyFieldName"]])
        for model in model_ids
        for o in service.objects.get(model, [])
        for key, value in o["properties"].items()
    }


FORMS_SQL = 'SELECT id, name, title, "accountId" FROM "AllForms"'
MODELS_SQL = 'SELECT id, name, "t_name", "r_id", "r_keyFieldName" FROM form.datamodels'
OBJECTS_SQL = 'SELECT "modelId", "propertyId", key, value, id FROM form.datamodelobjects'


def run_all(jobs: dict[str, Job]) -> None:
    for name in EXPORTS:
        run_ok(Job.objects.get(pk=jobs[name].pk))


@pytest.mark.postgres
def test_the_five_exports_replicate_form_com_and_follow_its_changes(
    jobs: dict[str, Job], service: FormService, sql: str
) -> None:
    # when every export runs once
    run_all(jobs)
    # then each target holds exactly what the service returned
    assert set(query(sql, FORMS_SQL)) == expected_forms(service)
    assert set(query(sql, MODELS_SQL)) == expected_models(service)
    assert set(query(sql, OBJECTS_SQL)) == expected_objects(service, [CUSTOMERS, TERRITORIES])
    raw = query(sql, 'SELECT "_raw" FROM "AllForms" WHERE id = 1')[0][0]
    assert raw.startswith("<return>") and "<title>Intake</title>" in raw
    # the SOAP bodies went out as the exports wrote them, {{@param.modelId}} filled in
    by_model = [b for b in service.received if "getModelObjectsByFilter" in b]
    assert any(f"<modelId>{CUSTOMERS}</modelId>" in b for b in by_model)
    assert any(f"<modelId>{TERRITORIES}</modelId>" in b for b in by_model)
    assert not any("{{" in b for b in service.received)
    # getAccount has no writer: its change log holds the account row
    account = Job.objects.get(pk=jobs["getAccount"].pk).executions.latest("pk")
    with ChangeLogReader(Path(account.package_file)) as log:
        names = [c.name for c in log.header.columns]
        (row,) = [r for frame in log.frames() for r in frame.rows]
    got = dict(zip(names, row, strict=True))
    assert got["login"] == "ops" and got["accountId"] == "6955196"
    assert got["_raw"].startswith("<return>")

    # given the service's data changes
    changed = copy.deepcopy(service)
    service.forms[0]["title"] = "Intake v2"
    del service.forms[1]  # AllForms' writer does not PropagateDelete: the row stays
    service.models[0]["columns"][1]["name"] = "Town"
    del service.models[1]["columns"][1]
    service.objects[CUSTOMERS][0]["properties"]["City"] = "Marseille"
    del service.objects[CUSTOMERS][1]
    # when every export runs again
    run_all(jobs)
    # then updates arrive everywhere, deletes where the export propagates them
    forms = expected_forms(service) | {
        (2, "audit", "Store audit", 6955196)  # kept: PropagateDelete is false
    }
    assert set(query(sql, FORMS_SQL)) == forms
    assert set(query(sql, MODELS_SQL)) == expected_models(service)
    assert set(query(sql, OBJECTS_SQL)) == expected_objects(service, [CUSTOMERS, TERRITORIES])
    assert changed.objects != service.objects


def test_the_worked_soap_example_of_the_docs_runs_on_sqlite(datazen: Any, tmp_path) -> None:
    # given docs/http.md's SOAP example: the export as it is, `sql` a SQLite file
    service = service_data()
    with serving(service) as url:
        ConnectionString.objects.create(
            key="form_noToken", system="HTTP", connection_type=ConnectionType.HTTP,
            value=json.dumps({"service": "http", "baseUrl": url, "authType": "none"}),
        )  # fmt: skip
        db = f"sqlite:///{tmp_path / 'soap-demo.db'}"
        ConnectionString.objects.create(
            key="sql", system="SQLite", connection_type=ConnectionType.DB, value=db
        )
        body = json.loads((SAMPLES / "form_getAllForms.json").read_text())
        assert datazen.post("/job", body, format="json").status_code == 200
        # when
        run_ok(Job.objects.get(job_key="form_getAllForms", kind="reader"))
    # then
    assert set(query(db, 'SELECT id, name, title, accountId FROM "AllForms"')) == (
        expected_forms(service)
    )
    assert service.calls == [
        ("/Member/api/v81/form/design/FormDesignManagementService", "getForms")
    ]


# The two UPSERT exports run end to end in tests/test_http_upserts.py.

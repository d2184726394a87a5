"""Dynamic jobs: kept for this boot only, started at once, their executions and logs kept."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobs import agent
from jobs.definitions import purge_stale_dynamic_jobs
from jobs.models import Execution, ExecutionStatus, Job, LogEntry
from tests.test_datazen_history import assert_shape, finished_run

DOC_GUID = "a3ff75315a4241d1958e1f9dbd53829f"

# POST /job/dynamic, as the document shows it.
DOC_POST_DYNAMIC = {
    "JobReader": {
        "SqlRead": (
            "SELECT ID, Title, AccountNumber, CompanyId, Created, Modified "
            "FROM SharePoint.[list@companies]"
        ),
        "Path": "C:\\tmp\\datasync_reader",
        "UpsertColumns": "ID",
        "ConnectionString": "enzo9550",
    },
    "JobWriter": {
        "UpsertColumns": "ID",
        "ConnectionString": "sql2017",
        "TargetObject": "[regression].SPCompanies2",
    },
}
# GET /job/dynamic's example entry (members and types).
DOC_DYNAMIC_READER = {
    "Guid": DOC_GUID,
    "JobKey": DOC_GUID,
    "SqlRead": "EXEC sharepoint._configuse 'default'; SELECT ID FROM SharePoint.[list@companies]",
    "Path": "C:\\tmp\\datasync_reader",
    "UpsertColumns": "ID",
    "TimestampCol": None,
    "LastTsPointer": None,
    "LastTsDelPointer": None,
    "ConnectionString": "Data Source=localhost,9550;User Id=sa;password=.....",
    "PropagateDelete": False,
    "SyncStrategy": "Full",
    "CreatedOn": "2022-10-12T18:31:46.2373302Z",
    "Status": None,
    "Initialize": False,
    "Active": True,
    "LastRunTime": "2022-10-12T18:31:50.0782741Z",
    "CronSchedule": None,
    "JsonData": {"DirectWriter": "__" + DOC_GUID},
    "PipelineDef": None,
    "SystemName": "Generic",
    "IsDBSource": True,
    "IsHttpSource": False,
    "IsDriveSource": False,
    "IsQueueingSource": False,
    "JobType": 1,
    "IsDirty": False,
    "TrackLastTs": False,
    "AuditLogEnabled": False,
    "IsDirect": True,
    "IsCDCSource": False,
}
DOC_DYNAMIC_EXECUTION = {
    "guid": DOC_GUID,
    "execGuid": DOC_GUID,
    "lastRunTime": "2022-10-12T18:31:50.077",
    "errors": 0,
    "warnings": 0,
}


def with_guid(body: dict[str, Any], guid: str = DOC_GUID) -> dict[str, Any]:
    sent = copy.deepcopy(body)
    sent["JobReader"]["Guid"] = guid
    return sent


def test_post_dynamic_document_example_runs_at_once(
    datazen, django_capture_on_commit_callbacks
) -> None:
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = datazen.post("/job/dynamic", DOC_POST_DYNAMIC, format="json")
    # then
    assert response.status_code == 200 and response.content == b"OK"
    reader = Job.objects.get(kind="reader")
    assert reader.is_dynamic and reader.boot_id == agent.boot_id()
    assert reader.job_key == reader.guid  # no JobKey given: the guid is the key
    assert reader.direct_writer.job_key == "__" + reader.job_key
    assert reader.connection_key == "enzo9550"
    run = Execution.objects.get()
    assert (run.job, run.status, run.is_dynamic, run.options) == (reader, "pending", True, {})
    assert len(callbacks) == 1


def test_post_dynamic_options_and_full_connection_string(datazen) -> None:
    # given
    body = copy.deepcopy(DOC_POST_DYNAMIC)
    body["JobReader"]["ConnectionString"] = "Data Source=localhost,9550;User Id=sa;password=x"
    # when
    response = datazen.post("/job/dynamic?resync=1&testrun=0&recreate=1", body, format="json")
    # then
    assert response.status_code == 200
    assert Execution.objects.get().options == {"resync": True, "testrun": False, "recreate": True}
    assert Job.objects.get(kind="reader").connection_key == ""  # not a key: nothing counted


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        (
            "Data Source=localhost,9550;User Id=sa;password=s3cret",
            "Data Source=localhost,9550;User Id=sa;password=.....",
        ),
        ("Server=x;PWD={a;b};Database=y", "Server=x;PWD=.....;Database=y"),
        ("postgresql://gw:s3cret@db:5432/films", "postgresql://gw:.....@db:5432/films"),
        ("enzo9550", "enzo9550"),
    ],
)
def test_get_dynamic_hides_the_password_of_a_full_connection_string(datazen, sent, shown) -> None:
    # given
    body = with_guid(DOC_POST_DYNAMIC)
    body["JobReader"]["ConnectionString"] = sent
    datazen.post("/job/dynamic", body, format="json")
    # when
    (reader,) = datazen.get(f"/job/dynamic?guid={DOC_GUID}").json()
    # then: shown as the document's example shows it; the job itself keeps it to run
    assert reader["ConnectionString"] == shown
    assert Job.objects.get(guid=DOC_GUID).definition["ConnectionString"] == sent


def test_post_dynamic_bad_option_and_missing_connection(datazen) -> None:
    assert (
        datazen.post("/job/dynamic?resync=yes", DOC_POST_DYNAMIC, format="json").status_code == 400
    )
    body = copy.deepcopy(DOC_POST_DYNAMIC)
    del body["JobReader"]["ConnectionString"]
    response = datazen.post("/job/dynamic", body, format="json")
    assert response.status_code == 400
    assert "ConnectionString" in response.json()["Error"]
    assert not Job.objects.exists() and not Execution.objects.exists()


def test_get_dynamic_document_example_shape(datazen) -> None:
    # given
    datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    # when
    response = datazen.get(f"/job/dynamic?guid={DOC_GUID}")
    # then: the reader, as sent plus what the gateway keeps (its writer has its own guid)
    assert response.status_code == 200
    (reader,) = response.json()
    assert reader["Guid"] == reader["JobKey"] == DOC_GUID
    assert reader["JsonData"] == DOC_DYNAMIC_READER["JsonData"]
    assert reader["LastTsPointer"] is None and reader["LastTsDelPointer"] is None
    assert reader["Status"] == "running" and reader["Active"] is True
    for name in DOC_POST_DYNAMIC["JobReader"]:
        assert reader[name] == DOC_POST_DYNAMIC["JobReader"][name]
    shared = set(reader) & set(DOC_DYNAMIC_READER)
    assert {"Guid", "JobKey", "Status", "Active", "LastRunTime", "CreatedOn", "JsonData"} <= shared
    for name in shared:
        example = DOC_DYNAMIC_READER[name]
        assert example is None or type(reader[name]) is type(example), name
    (writer,) = [j for j in datazen.get("/job/dynamic").json() if j["Guid"] != DOC_GUID]
    assert writer["JobKey"] == "__" + DOC_GUID
    assert writer["TargetObject"] == "[regression].SPCompanies2"


def test_get_dynamic_by_jobkey_and_all(datazen) -> None:
    # given
    first = with_guid(DOC_POST_DYNAMIC, "1" * 32)
    second = with_guid(DOC_POST_DYNAMIC, "2" * 32)
    second["JobReader"]["JobKey"] = "companies"
    second["JobWriter"] = None
    datazen.post("/job/dynamic", first, format="json")
    datazen.post("/job/dynamic", second, format="json")
    # when / then
    assert [j["Guid"] for j in datazen.get("/job/dynamic?jobkey=companies").json()] == ["2" * 32]
    assert len(datazen.get("/job/dynamic").json()) == 3
    # guid wins over jobkey
    assert (
        datazen.get(f"/job/dynamic?guid={'1' * 32}&jobkey=companies").json()[0]["Guid"] == "1" * 32
    )


def test_dynamic_jobs_are_not_stored_jobs(datazen) -> None:
    # given
    datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    # when / then: listed only with dynamic=1; stored-job operations refuse them
    assert datazen.get("/jobs/summary").json() == []
    (row,) = datazen.get("/jobssummary?dynamic=1").json()
    assert row["Guid"] == DOC_GUID and row["IsDirectMode"] is True
    assert datazen.get("/jobs/info").json() == []
    assert datazen.get(f"/jobs/info?guid={DOC_GUID}").status_code == 400
    assert datazen.delete(f"/job?guid={DOC_GUID}").status_code == 400
    assert datazen.post(f"/job/enable?guid={DOC_GUID}&active=0").status_code == 400


def test_stopprocessing_stops_a_dynamic_job(datazen) -> None:
    datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    assert datazen.post(f"/job/stopprocessing?guid={DOC_GUID}").status_code == 200
    assert Execution.objects.get().status == ExecutionStatus.CANCELLED


def test_reusing_a_guid_runs_again_and_history_carries_on(datazen) -> None:
    # given: a first run that finished with an error and a warning
    datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    first = Execution.objects.get()
    first.status, first.success = ExecutionStatus.SUCCEEDED, True
    first.save()
    Job.objects.filter(guid=DOC_GUID).update(status="ready")
    LogEntry.objects.create(
        execution=first, job_guid=DOC_GUID, sequence=1, level=3, message="bad row"
    )
    LogEntry.objects.create(execution=first, job_guid=DOC_GUID, sequence=2, level=2, message="slow")
    LogEntry.objects.create(execution=first, job_guid=DOC_GUID, sequence=3, level=1, message="done")
    # when
    again = datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    # then
    assert again.status_code == 200
    assert Job.objects.filter(guid=DOC_GUID).count() == 1
    rows = datazen.get(f"/job/dynamic/executions?guid={DOC_GUID}").json()
    assert len(rows) == 2
    for row in rows:
        assert_shape(row, DOC_DYNAMIC_EXECUTION)
    by_exec = {r["execGuid"]: r for r in rows}
    assert (by_exec[first.guid]["errors"], by_exec[first.guid]["warnings"]) == (1, 1)
    assert {r["guid"] for r in rows} == {DOC_GUID}


def test_reusing_the_guid_of_a_running_dynamic_job_is_a_conflict(datazen) -> None:
    datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    response = datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    assert response.status_code == 409
    assert Execution.objects.count() == 1


def test_dynamic_job_cannot_take_a_stored_jobs_guid(datazen) -> None:
    from tests.test_datazen_jobs import direct_job, post_job

    stored = post_job(datazen, direct_job())
    response = datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC, stored.guid), format="json")
    assert response.status_code == 409
    assert Job.objects.count() == 2


def test_earlier_boots_dynamic_jobs_are_invisible_and_purged_but_history_stays(datazen) -> None:
    # given: a dynamic job left by an earlier boot, with a run
    old = Job.objects.create(
        guid=DOC_GUID, kind="reader", job_key=DOC_GUID, is_dynamic=True, boot_id="earlier-boot"
    )
    run = finished_run(old)
    # when / then: not in memory any more
    assert datazen.get("/job/dynamic").json() == []
    assert datazen.get("/jobssummary?dynamic=1").json() == []
    assert datazen.post(f"/job/stopprocessing?guid={DOC_GUID}").status_code == 404
    # the run command purges it at start-up; its executions stay visible
    assert purge_stale_dynamic_jobs() == 1
    assert not Job.objects.filter(guid=DOC_GUID).exists()
    rows = datazen.get(f"/job/dynamic/executions?guid={DOC_GUID}").json()
    assert [r["execGuid"] for r in rows] == [run.guid]
    assert datazen.get(f"/jobs/status?execguid={run.guid}").status_code == 200


def test_purge_keeps_this_boots_dynamic_jobs(datazen) -> None:
    datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    assert purge_stale_dynamic_jobs() == 0
    assert Job.objects.filter(guid=DOC_GUID).exists()


@pytest.mark.parametrize("query", ["", "?guid="])
def test_dynamic_executions_needs_a_guid(datazen, query) -> None:
    assert datazen.get(f"/job/dynamic/executions{query}").status_code == 400


def test_get_dynamic_shows_the_documents_computed_members(datazen) -> None:
    # given the document's dynamic job
    datazen.post("/job/dynamic", with_guid(DOC_POST_DYNAMIC), format="json")
    # when
    (reader,) = datazen.get(f"/job/dynamic?guid={DOC_GUID}").json()
    # then its derived members are the document's
    computed = ("IsDBSource", "IsHttpSource", "IsDriveSource", "IsQueueingSource", "JobType",
                "IsDirty", "TrackLastTs", "AuditLogEnabled", "IsDirect", "IsCDCSource")  # fmt: skip
    assert {name: reader[name] for name in computed} == {
        name: DOC_DYNAMIC_READER[name] for name in computed
    }

"""Jobs API: POST/PUT/DELETE /job, enable, start/stop, pointers, with the document's examples."""

from __future__ import annotations

import copy
import json

import pytest

from jobs.models import Execution, ExecutionStatus, Job, JobStatus, LogEntry

DOC_GUID = "a3ff75315a4241d1958e1f9dbd53829f"

# POST /job, as the document shows it.
DOC_POST_JOB = {
    "JobReader": {
        "Guid": None,
        "JobKey": "TEST-JOB-ALLDATABASES",
        "SqlRead": "SELECT * FROM sys.databases",
        "Path": "C:\\Tmp\\datasync_reader\\",
        "UpsertColumns": "database_id",
        "TimestampCol": "",
        "LastTsPointer": None,
        "LastTsDelPointer": None,
        "ConnectionString": "sql2017",
        "PropagateDelete": False,
        "SyncStrategy": "Full",
        "CreatedOn": "2022-10-12T19:24:14.3440036Z",
        "Status": None,
        "Initialize": False,
        "Active": True,
        "LastRunTime": None,
        "CronSchedule": "0 */5 * ? * *",
        "JsonData": {
            "AuditLogEnabled": True,
            "KeepChangedLogFiles": True,
            "EncryptionFile": "",
            "BypassTopN": False,
            "TopNOverride": 0,
            "DirectWriter": None,
            "ExecutionTimeout": 0,
            "BypassSchemaDetection": False,
            "DeletedRecordsMethod": 0,
            "DeletedRecordsSQL": None,
            "CDCTokenDeletedField": "",
            "MessagingOptions": None,
            "DriveSourceSettings": None,
            "Column2TableTxSettings": None,
            "HttpSourceSettings": None,
            "BigDataSourceSettings": None,
            "JobTriggers": [],
            "JobTriggersEnabled": False,
            "CDCSettings": None,
            "DynamicParameter": None,
        },
        "SystemName": None,
        "PipelineDef": [],
    },
    "JobWriter": None,
}

# PUT /job exactly as printed: the guid is not quoted, so it is not JSON.
DOC_PUT_JOB_VERBATIM = json.dumps(DOC_POST_JOB, indent="\t").replace(
    '"Guid": null', f'"Guid": {DOC_GUID}', 1
)


def doc_put_job_adapted() -> dict:
    """The PUT example with its guid quoted (the only change)."""
    return json.loads(DOC_PUT_JOB_VERBATIM.replace(f"{DOC_GUID},", f'"{DOC_GUID}",', 1))


def direct_job(key: str = "FILMS", cron: str = "") -> dict:
    return {
        "JobReader": {
            "Guid": None,
            "JobKey": key,
            "SqlRead": "SELECT * FROM film",
            "Path": "C:\\tmp\\films",
            "UpsertColumns": "film_id",
            "ConnectionString": "mysql-sakila",
            "CronSchedule": cron,
            "JsonData": {"DirectWriter": None},
            "SystemName": "MySQL",
            "PipelineDef": [],
        },
        "JobWriter": {
            "Guid": None,
            "UpsertColumns": "film_id",
            "ConnectionString": "pg-target",
            "TargetSystem": "DB",
            "TargetObject": "public.film",
            "PipelineDef": "[]",
        },
    }


def post_job(client, body: dict) -> Job:
    response = client.post("/job", body, format="json")
    assert response.status_code == 200, response.content
    return Job.objects.get(job_key=body["JobReader"]["JobKey"], kind="reader")


def error_of(response) -> str:
    body = response.json()
    assert set(body) == {"Error", "StatusCode"}
    assert body["StatusCode"] == response.status_code
    return body["Error"]


# --- POST / PUT / DELETE /job --------------------------------------------------------------


def test_post_job_document_example(datazen) -> None:
    # when
    response = datazen.post("/job", DOC_POST_JOB, format="json")
    # then
    assert response.status_code == 200
    assert response.content == b"OK"
    job = Job.objects.get(job_key="TEST-JOB-ALLDATABASES")
    assert (job.kind, job.cron_schedule, job.connection_key) == (
        "reader",
        "0 */5 * ? * *",
        "sql2017",
    )
    assert job.created_on.isoformat().startswith("2022-10-12T19:24:14.344003")
    info = datazen.get(f"/jobs/info?guid={job.guid}").json()[0]
    sent = DOC_POST_JOB["JobReader"]
    for name, value in sent.items():
        if name not in {"Guid", "Status", "LastRunTime", "LastTsPointer", "LastTsDelPointer"}:
            assert info["JobReader"][name] == value, name
    # maintained by the gateway, in the form /jobs/info shows them
    assert info["JobReader"]["LastTsPointer"] == info["JobReader"]["LastTsDelPointer"] == ""
    assert info["JobReader"]["Guid"] == job.guid
    assert info["JobReader"]["Status"] == "ready"
    assert info["JobReader"]["LastRunTime"] == "0001-01-01T00:00:00"


def test_post_job_accepts_json_sent_without_a_json_content_type(datazen) -> None:
    # when: curl -d without -H "Content-Type: application/json"
    response = datazen.post(
        "/job", json.dumps(DOC_POST_JOB), content_type="application/x-www-form-urlencoded"
    )
    # then
    assert response.status_code == 200
    assert Job.objects.filter(job_key="TEST-JOB-ALLDATABASES").exists()


def test_put_job_document_example_verbatim_is_refused_with_line_and_column(datazen) -> None:
    # given
    datazen.post("/job", DOC_POST_JOB, format="json")
    # when
    response = datazen.put("/job", DOC_PUT_JOB_VERBATIM, content_type="application/json")
    # then
    assert response.status_code == 400
    assert "line 3, column 11" in error_of(response)


def test_put_job_document_example_with_quoted_guid_updates_by_guid(datazen) -> None:
    # given: the job exists under the guid the example uses (a client may choose its guid)
    created = copy.deepcopy(DOC_POST_JOB)
    created["JobReader"]["Guid"] = DOC_GUID
    created["JobReader"]["SqlRead"] = "SELECT 1"
    post_job(datazen, created)
    # when
    response = datazen.put("/job", doc_put_job_adapted(), format="json")
    # then
    assert response.status_code == 200
    assert response.content == b"OK"
    job = Job.objects.get(guid=DOC_GUID)
    assert job.definition["SqlRead"] == "SELECT * FROM sys.databases"
    assert Job.objects.count() == 1


def test_put_job_keeps_maintained_values_and_can_rename(datazen) -> None:
    # given
    job = post_job(datazen, direct_job("FILMS"))
    datazen.post(f"/job/settspointer?guid={job.guid}&type=read&val=2024-01-01")
    info = datazen.get(f"/jobs/info?guid={job.guid}").json()[0]
    body = {"JobReader": info["JobReader"], "JobWriter": info["JobWriter"]}
    body["JobReader"]["LastTsPointer"] = None
    body["JobReader"]["SqlRead"] = "SELECT film_id FROM film"
    body["JobWriter"]["TargetObject"] = "public.film2"
    # when
    response = datazen.put("/job", body, format="json")
    # then
    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.last_ts_pointer == "2024-01-01"
    assert job.definition["SqlRead"] == "SELECT film_id FROM film"
    assert job.direct_writer.definition["TargetObject"] == "public.film2"
    assert Job.objects.count() == 2


def test_put_reader_alone_keeps_the_direct_writer(datazen) -> None:
    # given
    reader = post_job(datazen, direct_job("FILMS"))
    body = {"JobReader": datazen.get(f"/jobs/info?guid={reader.guid}").json()[0]["JobReader"]}
    body["JobReader"]["JsonData"] = None
    # when
    response = datazen.put("/job", body, format="json")
    # then
    assert response.status_code == 200
    package = datazen.get(f"/jobs/info?guid={reader.guid}").json()[0]
    assert package["IsDirectMode"] is True
    assert package["JobReader"]["JsonData"] == {"DirectWriter": "__FILMS"}


def test_put_job_resets_the_next_run_only_when_the_schedule_changes(datazen) -> None:
    # given: a job whose run is due (missed while the agent was stopped)
    from django.utils import timezone

    reader = post_job(datazen, direct_job("FILMS", cron="0 */5 * ? * *"))
    due = timezone.now().replace(microsecond=0)
    Job.objects.filter(pk=reader.pk).update(next_run_at=due)
    body = datazen.get(f"/jobs/info?guid={reader.guid}").json()[0]
    body = {"JobReader": body["JobReader"], "JobWriter": body["JobWriter"]}
    # when: same schedule
    datazen.put("/job", body, format="json")
    # then
    reader.refresh_from_db()
    assert reader.next_run_at == due
    # when: another schedule
    body["JobReader"]["CronSchedule"] = "0 0 * ? * *"
    datazen.put("/job", body, format="json")
    reader.refresh_from_db()
    assert reader.next_run_at is None and reader.cron_schedule == "0 0 * ? * *"


def test_put_job_takes_active_as_sent_and_keeps_it_when_absent(datazen) -> None:
    # given
    reader = post_job(datazen, DOC_POST_JOB)
    body = copy.deepcopy(DOC_POST_JOB)
    body["JobReader"]["Guid"] = reader.guid
    body["JobReader"]["Active"] = False
    # when / then
    assert datazen.put("/job", body, format="json").status_code == 200
    reader.refresh_from_db()
    assert reader.active is False
    del body["JobReader"]["Active"]
    assert datazen.put("/job", body, format="json").status_code == 200
    reader.refresh_from_db()
    assert reader.active is False


def test_put_reader_with_its_writer_makes_a_direct_job(datazen) -> None:
    # given: a reader and a writer posted on its own for it
    reader = post_job(datazen, DOC_POST_JOB)
    writer = {"JobKey": "__TEST-JOB-ALLDATABASES", "SourceJobKey": reader.job_key,
              "ConnectionString": "pg"}  # fmt: skip
    datazen.post("/job", {"JobWriter": writer}, format="json")
    writer["Guid"] = Job.objects.get(kind="writer").guid
    body = copy.deepcopy(DOC_POST_JOB)
    body["JobReader"]["Guid"] = reader.guid
    # when
    response = datazen.put("/job", {**body, "JobWriter": writer}, format="json")
    # then
    assert response.status_code == 200, response.content
    (package,) = datazen.get("/jobs/info").json()
    assert package["IsDirectMode"] is True
    assert package["JobWriter"]["Guid"] == writer["Guid"]
    assert package["JobReader"]["JsonData"]["DirectWriter"] == "__TEST-JOB-ALLDATABASES"


def test_put_job_unknown_guid_is_404_and_changes_nothing(datazen) -> None:
    # given
    post_job(datazen, DOC_POST_JOB)
    body = doc_put_job_adapted()
    body["JobReader"]["SqlRead"] = "DROP TABLE x"
    # when
    response = datazen.put("/job", body, format="json")
    # then
    assert response.status_code == 404
    assert DOC_GUID in error_of(response)
    assert Job.objects.get().definition["SqlRead"] == "SELECT * FROM sys.databases"


def test_put_job_without_guid_is_400(datazen) -> None:
    response = datazen.put("/job", DOC_POST_JOB, format="json")
    assert response.status_code == 400
    assert "Guid is required" in error_of(response)


def test_delete_job_removes_reader_and_writer_but_keeps_history(datazen) -> None:
    # given
    reader = post_job(datazen, direct_job())
    writer = reader.direct_writer
    run = Execution.objects.create(
        job=reader, job_guid=reader.guid, job_key=reader.job_key, listener_type="reader"
    )
    LogEntry.objects.create(
        execution=run, job_guid=reader.guid, sequence=1, message="Reader starting..."
    )
    # when
    response = datazen.delete(f"/job?guid={reader.guid}")
    # then
    assert response.status_code == 200
    assert response.content == b"OK"
    assert not Job.objects.filter(pk__in=[reader.pk, writer.pk]).exists()
    run.refresh_from_db()
    assert run.job_id is None and run.job_guid == reader.guid
    assert datazen.get(f"/job/log?execguid={run.guid}").json()[0]["Message"] == "Reader starting..."
    assert datazen.get(f"/jobs/status?execguid={run.guid}").status_code == 200


def test_delete_document_example_unknown_and_missing_guid(datazen) -> None:
    assert datazen.delete(f"/job?guid={DOC_GUID}").status_code == 404
    assert datazen.delete("/job").status_code == 400


def test_writer_posted_alone_attaches_to_its_reader(datazen) -> None:
    # given
    reader = post_job(datazen, DOC_POST_JOB)
    writer = {"JobKey": "ALLDB-copy", "SourceJobKey": reader.job_key, "ConnectionString": "pg"}
    # when
    response = datazen.post("/job", {"JobReader": None, "JobWriter": writer}, format="json")
    # then
    assert response.status_code == 200
    stored = Job.objects.get(job_key="ALLDB-copy")
    assert stored.source == reader and stored.kind == "writer"
    assert not reader.is_direct
    listed = datazen.get("/jobs/info").json()
    assert {(p["JobKey"], p["JobType"]) for p in listed} == {
        ("TEST-JOB-ALLDATABASES", 1),
        ("ALLDB-copy", 2),
    }


# --- bad input ----------------------------------------------------------------------------


def test_malformed_json_says_where(datazen) -> None:
    response = datazen.post(
        "/job", '{\n  "JobReader": {"JobKey": "x",}\n}', content_type="application/json"
    )
    assert response.status_code == 400
    assert "line 2, column 31" in error_of(response)
    assert Job.objects.count() == 0


def test_empty_body_is_refused(datazen) -> None:
    response = datazen.post("/job", "", content_type="application/json")
    assert response.status_code == 400
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (lambda b: b["JobReader"].update(CronSchedule="0 0 25 * * ?"), 400, "CronSchedule"),
        (lambda b: b["JobReader"].update(CronSchedule="every day"), 400, "CronSchedule"),
        (
            lambda b: b["JobReader"].update(PipelineDef=[{"Name": "DataTeleport"}]),
            400,
            "DataTeleport",
        ),
        (lambda b: b["JobWriter"].update(PipelineDef='[{"Name": '), 400, "line 1"),
        (lambda b: b["JobReader"].update(JobKey=""), 400, "JobKey is required"),
        (lambda b: b["JobReader"].update(ConnectionString=""), 400, "ConnectionString"),
        (lambda b: b["JobReader"].update(Active="maybe"), 400, "Active"),
        (lambda b: b["JobReader"].update(JsonData=[]), 400, "JsonData"),
        (lambda b: b.update(JobReader=None), 400, "needs a JobReader"),
        (lambda b: b.update(JobReader=None, JobWriter=None), 400, "At least one"),
        (lambda b: b["JobWriter"].update(SourceJobKey="OTHER"), 400, "SourceJobKey"),
    ],
)
def test_bad_definitions_are_refused_and_change_nothing(datazen, change, status, words) -> None:
    # given
    body = direct_job("NEW")
    change(body)
    # when
    response = datazen.post("/job", body, format="json")
    # then
    assert response.status_code == status, response.content
    assert words in error_of(response)
    assert Job.objects.count() == 0


def test_writer_whose_reader_does_not_exist_is_refused(datazen) -> None:
    body = {"JobWriter": {"JobKey": "w", "SourceJobKey": "nobody", "ConnectionString": "pg"}}
    response = datazen.post("/job", body, format="json")
    assert response.status_code == 400
    assert "nobody" in error_of(response)
    assert Job.objects.count() == 0


def test_direct_job_whose_writer_key_is_taken_creates_nothing(datazen) -> None:
    # given: a job already uses the key the new direct job's writer would get
    taken = copy.deepcopy(DOC_POST_JOB)
    taken["JobReader"]["JobKey"] = "__FILMS"
    post_job(datazen, taken)
    # when
    response = datazen.post("/job", direct_job("FILMS"), format="json")
    # then
    assert response.status_code == 409
    assert "__FILMS" in error_of(response)
    assert list(Job.objects.values_list("job_key", flat=True)) == ["__FILMS"]


# --- enable, pointers, start, stop ------------------------------------------------------------


def test_enable_document_example_get_and_post(datazen) -> None:
    # given
    reader = post_job(datazen, direct_job())
    # when: the document shows GET, describes POST
    disabled = datazen.get(f"/job/enable?guid={reader.guid}&active=0")
    # then
    assert disabled.status_code == 200 and disabled.content == b"OK"
    reader.refresh_from_db()
    assert not reader.active and not reader.direct_writer.active
    assert datazen.get(f"/jobs/info?guid={reader.guid}").json()[0]["JobReader"]["Active"] is False
    assert datazen.post(f"/job/enable?guid={reader.guid}&active=1").status_code == 200
    reader.refresh_from_db()
    assert reader.active


@pytest.mark.parametrize("active", ["2", "true", ""])
def test_enable_refuses_anything_but_0_or_1(datazen, active) -> None:
    reader = post_job(datazen, direct_job())
    response = datazen.post(f"/job/enable?guid={reader.guid}&active={active}")
    assert response.status_code == 400
    assert "0 (disable) or 1 (enable)" in error_of(response)
    reader.refresh_from_db()
    assert reader.active


def test_enable_unknown_guid_is_404(datazen) -> None:
    assert datazen.post("/job/enable?guid=123456789&active=0").status_code == 404


def test_settspointer_document_example_and_val(datazen) -> None:
    # given
    reader = post_job(datazen, DOC_POST_JOB)
    Job.objects.filter(pk=reader.pk).update(last_ts_pointer="old")
    # when: the document's example has no val, which empties the pointer
    response = datazen.post(f"/job/settspointer?guid={reader.guid}&type=read")
    # then
    assert response.status_code == 200 and response.content == b"OK"
    reader.refresh_from_db()
    assert reader.last_ts_pointer == ""
    datazen.post(f"/job/settspointer?guid={reader.guid}&type=delete&val=2024-03-01T00:00:00")
    info = datazen.get(f"/jobs/info?guid={reader.guid}").json()[0]["JobReader"]
    assert info["LastTsDelPointer"] == "2024-03-01T00:00:00"
    summary = datazen.get("/jobs/summary").json()[0]
    assert summary["LastTsDelPointer"] == "2024-03-01T00:00:00"


def test_settspointer_bad_type_and_writer(datazen) -> None:
    reader = post_job(datazen, direct_job())
    bad_type = datazen.post(f"/job/settspointer?guid={reader.guid}&type=write&val=1")
    assert bad_type.status_code == 400
    assert "'read' or 'delete'" in error_of(bad_type)
    on_writer = datazen.post(f"/job/settspointer?guid={reader.direct_writer.guid}&type=read&val=1")
    assert on_writer.status_code == 400


def test_start_document_example_queues_one_execution(
    datazen, django_capture_on_commit_callbacks
) -> None:
    # given
    reader = post_job(datazen, direct_job())
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = datazen.post(f"/job/start?guid={reader.guid}")
    # then
    assert response.status_code == 200 and response.content == b"OK"
    run = Execution.objects.get(job=reader)
    assert (run.status, run.listener_type, run.job_guid) == ("pending", "reader", reader.guid)
    assert len(callbacks) == 1  # the Celery task is sent once the transaction commits
    reader.refresh_from_db()
    assert reader.status == JobStatus.RUNNING
    # starting a running job is ignored and still OK
    again = datazen.post(f"/job/start?guid={reader.guid}")
    assert again.status_code == 200
    assert Execution.objects.filter(job=reader).count() == 1


def test_start_through_a_direct_writer_guid_starts_the_reader(datazen) -> None:
    reader = post_job(datazen, direct_job())
    assert datazen.post(f"/job/start?guid={reader.direct_writer.guid}").status_code == 200
    assert Execution.objects.get().job == reader


def test_start_disabled_job_is_refused(datazen) -> None:
    reader = post_job(datazen, direct_job())
    datazen.post(f"/job/enable?guid={reader.guid}&active=0")
    response = datazen.post(f"/job/start?guid={reader.guid}")
    assert response.status_code == 409
    assert "disabled" in error_of(response)
    assert not Execution.objects.exists()


def test_start_unknown_job_is_404(datazen) -> None:
    assert datazen.post("/job/start?guid=c920da3f3cac4bb99f8cde2f8b2f231c").status_code == 404


@pytest.mark.parametrize("route", ["/job/stop", "/job/stopprocessing"])
def test_stop_cancels_a_queued_run(datazen, route) -> None:
    # given
    reader = post_job(datazen, direct_job())
    datazen.post(f"/job/start?guid={reader.guid}")
    # when
    response = datazen.post(f"{route}?guid={reader.guid}")
    # then
    assert response.status_code == 200 and response.content == b"OK"
    run = Execution.objects.get()
    assert run.status == ExecutionStatus.CANCELLED and run.cancel_requested
    reader.refresh_from_db()
    assert reader.status == JobStatus.READY


def test_stop_a_job_that_is_not_running_is_ok(datazen) -> None:
    reader = post_job(datazen, direct_job())
    assert datazen.post(f"/job/stop?guid={reader.guid}").status_code == 200
    assert datazen.post("/job/stop?guid=c920da3f3cac4bb99f8cde2f8b2f231c").status_code == 404


def test_delete_direct_writer_alone_leaves_a_plain_reader(datazen) -> None:
    # given
    reader = post_job(datazen, direct_job("FILMS"))
    # when
    response = datazen.delete(f"/job?guid={reader.direct_writer.guid}")
    # then
    assert response.status_code == 200
    package = datazen.get(f"/jobs/info?guid={reader.guid}").json()[0]
    assert package["IsDirectMode"] is False and package["JobWriter"] is None
    assert package["JobReader"]["JsonData"]["DirectWriter"] is None
    assert Job.objects.count() == 1


def test_a_job_whose_triggers_cannot_be_read_is_refused_and_nothing_is_saved(datazen) -> None:
    # given a reader whose JobTriggers names a trigger kind the gateway does not know
    body = {
        "JobReader": {
            "JobKey": "with-bad-trigger",
            "SqlRead": "SELECT 1",
            "ConnectionString": "sql2017",
            "JsonData": {
                "JobTriggersEnabled": True,
                "JobTriggers": [{"JobKey": "next", "TriggerType": "WhenTheMoonIsFull"}],
            },
        },
        "JobWriter": None,
    }
    # when
    response = datazen.post("/job", body, format="json")
    # then
    assert response.status_code == 400
    assert "JobTriggers" in response.json()["Error"]
    assert not Job.objects.filter(job_key="with-bad-trigger").exists()


def test_json_data_sent_as_a_json_string_is_accepted_like_an_object(datazen) -> None:
    # given a reader whose JsonData is JSON text, as some exports send it
    body = direct_job("TEXTDATA")
    body["JobReader"]["JsonData"] = json.dumps({"KeepChangedLogFiles": True, "TopNOverride": 0})
    # when
    response = datazen.post("/job", body, format="json")
    # then it is stored as text still, with the direct writer named in it as for an object
    assert response.status_code == 200, response.content
    stored = Job.objects.get(job_key="TEXTDATA").definition
    assert json.loads(stored["JsonData"]) == {
        "KeepChangedLogFiles": True,
        "TopNOverride": 0,
        "DirectWriter": "__TEXTDATA",
    }


def test_a_definition_field_a_run_could_not_read_is_refused_at_save(datazen) -> None:
    # given a TopNOverride that is not a number: the run would fail on it later
    body = direct_job("BADTOP")
    body["JobReader"]["JsonData"] = {"TopNOverride": "ten"}
    # when
    response = datazen.post("/job", body, format="json")
    # then
    assert response.status_code == 400
    assert "JobReader.JsonData.TopNOverride must be a whole number" in error_of(response)
    assert Job.objects.count() == 0

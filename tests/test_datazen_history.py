"""History, logs, status, info and summary: the document's examples, checked field by field."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs.models import ConnectionString, Execution, ExecutionStatus, Job, LogEntry
from tests.test_datazen_jobs import direct_job, error_of, post_job

# The document's own response examples (one entry each), for their members and types.
DOC_HISTORY_ENTRY = {
    "Guid": "0c843d0f69dd4b449d3c4c43d47bf7c7",
    "ListenerType": "reader",
    "ElapsedSQLTime": 0.0361273,
    "ElapsedMapRecudeTime": 0.1177181,
    "RecordCount": 5,
    "RecordsAvailable": 5,
    "DeleteCount": 0,
    "LastTsPointer": None,
    "LastDelTsPointer": None,
    "ErrorMessage": "",
    "Success": True,
    "JobKey": "SQL-2-SQLTest",
    "ExecutionId": "1660662334171",
    "PackageFile": "C:\\tmp\\datasync_reader\\SQL-2-SQLTest_1660662334171.eds",
    "CreatedOn": "2022-08-16T15:05:32.94",
    "IsConsumerDeamonError": False,
    "RecordsDirectWritten": 5,
    "RecordsDirectDeleted": 0,
    "ExecGuid": "b5b37cd4190d4e97a01d33e00c82fa74",
    "ExecRunTime": 4.83,
    "ExecStartTime": "2022-08-16T15:05:32.94",
    "ExecStopTime": "2022-08-16T15:05:36.77",
}
DOC_JOB_STATUS = dict(DOC_HISTORY_ENTRY, ExecRunTime="5.00")
DOC_LAST_STATUS = {
    k: v
    for k, v in DOC_HISTORY_ENTRY.items()
    if k
    not in (
        "LastTsPointer",
        "LastDelTsPointer",
        "ExecGuid",
        "ExecRunTime",
        "ExecStartTime",
        "ExecStopTime",
    )
}
DOC_OUTPUT_MESSAGE = {
    "Sequence": 1,
    "Guid": "5945167f7aef40aa9c8a7873432d2ebb",
    "DateAdded": "2021-10-19T20:41:04",
    "Message": "Reader starting...",
    "Level": 0,
    "ExecGuid": "c920da3f3cac4bb99f8cde2f8b2f231c",
}
DOC_JOB_INFO_KEYS = {"Guid", "JobType", "JobKey", "Active", "JobReader", "JobWriter",
                     "LastStatus", "IsDirectMode", "DirectLastStatus"}  # fmt: skip
DOC_SUMMARY_ROW = {
    "Guid": "708f8f348a514dbbb394f95aef6f373e",
    "TargetGuid": "a71ab5bd3d324708b7c122bfecfef0b5",
    "JobType": 1,
    "JobKey": "Kafka-MSMQ",
    "Active": False,
    "IsDirectMode": True,
    "Path": "C:\\tmp",
    "SourceSystemName": "Kafka",
    "TargetSystemName": "MSMQ",
    "LastExecutionId": "1636653527797",
    "LastTsPointer": '{"0":3331}',
    "LastTsDelPointer": "",
    "UpsertColumns": "",
    "TimestampCol": "",
    "CreatedOn": "2021-10-14T18:51:14",
    "CronSchedule": "",
    "LastRunTime": "2021-12-09T20:49:07",
    "Status": "ready",
    "IsQueueingSource": True,
    "IsHttpSource": False,
    "IsDriveSource": False,
    "IsDBSource": False,
    "TargetSystem": "MESSAGING",
    "IsConsumerDeamonError": False,
    "Success": True,
    "ErrorMessage": "",
    "DirectSuccess": True,
    "DirectErrorMessage": "",
    "TrackLastTs": False,
    "ConnectionString": "kafka-cloud",
    "SourceSystem": "Kafka",
    "IsCDCSource": False,
}


def assert_shape(got: dict[str, Any], doc: dict[str, Any]) -> None:
    """Same members as the document, each of the document's type (null may be a string)."""
    assert set(got) == set(doc)
    for name, example in doc.items():
        if example is None:
            assert got[name] is None or isinstance(got[name], str), name
        else:
            assert type(got[name]) is type(example), (name, got[name])


def finished_run(job: Job, exec_guid: str | None = None, **fields: Any) -> Execution:
    """A run as the engine leaves it: started, finished, counted."""
    start = timezone.now() - timedelta(seconds=10)
    values: dict[str, Any] = {
        "job": job,
        "job_guid": job.guid,
        "job_key": job.job_key,
        "listener_type": job.kind,
        "status": ExecutionStatus.SUCCEEDED,
        "success": True,
        "execution_id": "1660662334171",
        "package_file": f"C:\\tmp\\films\\{job.job_key}_1660662334171.eds",
        "record_count": 5,
        "records_available": 5,
        "elapsed_sql_time": 0.0361273,
        "elapsed_map_reduce_time": 0.1177181,
        "started_at": start,
        "finished_at": start + timedelta(seconds=4, milliseconds=830),
        **fields,
    }
    if exec_guid:
        values["guid"] = exec_guid
    return Execution.objects.create(**values)


@pytest.fixture
def direct(datazen) -> Job:
    return post_job(datazen, direct_job("SQL-2-SQLTest"))


def test_history_document_example_shape_and_direct_writer_entries(datazen, direct) -> None:
    # given: a direct run (reader and writer share the execution guid) and an empty run
    run = finished_run(direct, records_direct_written=5)
    finished_run(direct.direct_writer, exec_guid=run.guid)
    finished_run(direct, record_count=0, records_available=0)
    # when
    response = datazen.get(f"/job/history?guid={direct.guid}")
    # then: the empty run is filtered out; the writer's entry is there
    assert response.status_code == 200
    entries = response.json()
    assert [e["ListenerType"] for e in entries] == ["writer", "reader"]
    for entry in entries:
        assert_shape(entry, DOC_HISTORY_ENTRY)
    reader_entry = entries[1]
    assert reader_entry["Guid"] == direct.guid
    assert reader_entry["JobKey"] == "SQL-2-SQLTest"
    assert reader_entry["ExecGuid"] == entries[0]["ExecGuid"] == run.guid
    assert reader_entry["ExecRunTime"] == 4.83
    assert reader_entry["RecordsDirectWritten"] == 5
    assert entries[0]["JobKey"] == "__SQL-2-SQLTest"


def test_history_filter_all_limit_and_listener_type(datazen, direct) -> None:
    # given
    for _ in range(3):
        finished_run(direct, record_count=0)
    finished_run(direct.direct_writer)
    # when / then
    everything = datazen.get(f"/job/history?guid={direct.guid}&filter=all").json()
    assert len(everything) == 4
    assert len(datazen.get(f"/job/history?guid={direct.guid}&limit=2&filter=all").json()) == 2
    writer_only = datazen.get(
        f"/job/history?guid={direct.guid}&limit=500&listenerType=writer&filter=all"
    ).json()
    assert [e["ListenerType"] for e in writer_only] == ["writer"]


def test_history_keeps_failed_runs_and_refuses_bad_parameters(datazen, direct) -> None:
    finished_run(direct, record_count=0, success=False, status="failed", error_message="boom")
    assert [e["ErrorMessage"] for e in datazen.get(f"/job/history?guid={direct.guid}").json()] == [
        "boom"
    ]
    assert datazen.get(f"/job/history?guid={direct.guid}&limit=x").status_code == 400
    assert datazen.get(f"/job/history?guid={direct.guid}&listenerType=flow").status_code == 400
    assert datazen.get("/job/history?guid=123456789").status_code == 404
    assert datazen.get("/job/history").status_code == 400


def test_history_of_a_run_that_never_started(datazen, direct) -> None:
    Execution.objects.create(
        job=direct, job_guid=direct.guid, job_key=direct.job_key, listener_type="reader"
    )
    entry = datazen.get(f"/job/history?guid={direct.guid}&filter=all").json()[0]
    assert entry["ExecRunTime"] == -1.0
    assert entry["ExecStartTime"] == entry["ExecStopTime"] == "0001-01-01T00:00:00"
    assert entry["ExecutionId"] is None


@pytest.mark.parametrize("route", ["/jobs/status", "/job/status"])
def test_job_status_document_example_shape(datazen, direct, route) -> None:
    # given
    run = finished_run(direct)
    finished_run(direct.direct_writer, exec_guid=run.guid)
    # when
    response = datazen.get(f"{route}?execguid={run.guid}")
    # then: the reader's status, ExecRunTime as the document's text form
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"SyncStatus"}
    assert_shape(body["SyncStatus"], DOC_JOB_STATUS)
    assert body["SyncStatus"]["ListenerType"] == "reader"
    assert body["SyncStatus"]["ExecRunTime"] == "4.83"
    assert body["SyncStatus"]["ExecGuid"] == run.guid


def test_job_status_unknown_or_missing_execguid(datazen) -> None:
    assert (
        datazen.get("/jobs/status?execguid=5d66ebae-42d8-4a0d-b0c7-c4f323a5bb63").status_code == 404
    )
    assert datazen.get("/jobs/status").status_code == 400


def test_job_log_document_example_shape(datazen, direct) -> None:
    # given: entries of the reader and of the writer of one direct run
    run = finished_run(direct)
    writer_run = finished_run(direct.direct_writer, exec_guid=run.guid)
    for seq, message in enumerate(["Reader starting...", "Strategy: full"], start=1):
        LogEntry.objects.create(
            execution=run, job_guid=direct.guid, sequence=seq, level=0, message=message
        )
    LogEntry.objects.create(
        execution=writer_run,
        job_guid=writer_run.job_guid,
        sequence=1,
        level=1,
        message="Writer starting...",
    )
    # when
    response = datazen.get(f"/job/log?execguid={run.guid}")
    # then
    assert response.status_code == 200
    entries = response.json()
    for entry in entries:
        assert_shape(entry, DOC_OUTPUT_MESSAGE)
    assert [e["Message"] for e in entries] == [
        "Reader starting...",
        "Strategy: full",
        "Writer starting...",
    ]
    assert [e["Sequence"] for e in entries] == [1, 2, 1]
    assert {e["ExecGuid"] for e in entries} == {run.guid}
    assert entries[0]["Guid"] == direct.guid
    assert datazen.get("/job/log?execguid=c920da3f3cac4bb99f8cde2f8b2f231c").status_code == 404


def test_job_output_gives_the_last_200_entries_oldest_first(datazen, direct) -> None:
    # given
    run = finished_run(direct)
    LogEntry.objects.bulk_create(
        LogEntry(execution=run, job_guid=direct.guid, sequence=n, level=n % 4, message=f"line {n}")
        for n in range(1, 206)
    )
    # when
    response = datazen.get(f"/job/output?guid={direct.guid}")
    # then
    assert response.status_code == 200
    entries = response.json()
    assert len(entries) == 200
    assert entries[0]["Message"] == "line 6" and entries[-1]["Message"] == "line 205"
    assert all(a["Sequence"] < b["Sequence"] for a, b in itertools.pairwise(entries))
    for entry in entries:
        assert_shape(entry, DOC_OUTPUT_MESSAGE)
    assert datazen.get("/job/output?guid=2b76c83008174135849ab0c7619a6d9e").status_code == 404


def test_job_output_outlives_a_deleted_job(datazen, direct) -> None:
    run = finished_run(direct)
    LogEntry.objects.create(execution=run, job_guid=direct.guid, sequence=1, message="done")
    datazen.delete(f"/job?guid={direct.guid}")
    assert [e["Message"] for e in datazen.get(f"/job/output?guid={direct.guid}").json()] == ["done"]


def test_jobs_info_last_status_and_direct_last_status(datazen, direct) -> None:
    # given
    finished_run(direct, record_count=1)
    newest = finished_run(direct, record_count=7, execution_id="1636657095008")
    finished_run(direct.direct_writer, exec_guid=newest.guid, execution_id="1636657095008")
    # when
    info = datazen.get(f"/jobs/info?guid={direct.guid}").json()
    # then
    assert len(info) == 1
    package = info[0]
    assert set(package) == DOC_JOB_INFO_KEYS
    assert_shape(package["LastStatus"], DOC_LAST_STATUS)
    assert_shape(package["DirectLastStatus"], DOC_LAST_STATUS)
    assert package["LastStatus"]["RecordCount"] == 7
    assert package["DirectLastStatus"]["ListenerType"] == "writer"
    assert package["DirectLastStatus"]["Guid"] == direct.direct_writer.guid
    assert package["IsDirectMode"] is True
    # the writer's guid finds the same direct job
    assert datazen.get(f"/jobs/info?guid={direct.direct_writer.guid}").json() == info


def test_jobs_info_unknown_guid_is_404(datazen) -> None:
    response = datazen.get("/jobs/info?guid=0c843d0f69dd4b449d3c4c43d47bf7c7")
    assert response.status_code == 404
    assert "0c843d0f69dd4b449d3c4c43d47bf7c7" in error_of(response)


@pytest.mark.parametrize("route", ["/jobs/summary", "/jobssummary"])
def test_jobs_summary_document_example_shape(datazen, route) -> None:
    # given: the document's second row, as a Kafka consumer feeding a messaging writer
    ConnectionString.objects.create(key="kafka-cloud", system="Kafka", connection_type="Messaging")
    ConnectionString.objects.create(key="msmq", system="MSMQ", connection_type="Messaging")
    body = direct_job("Kafka-MSMQ")
    body["JobReader"].update(
        ConnectionString="kafka-cloud", SystemName="Kafka", SqlRead="", UpsertColumns=""
    )
    body["JobReader"]["JsonData"]["MessagingOptions"] = {"MessagingBatchCount": 20}
    body["JobWriter"].update(ConnectionString="msmq", TargetSystem="MESSAGING")
    reader = post_job(datazen, body)
    datazen.post(f"/job/settspointer?guid={reader.guid}&type=read&val=%7B%220%22%3A3331%7D")
    datazen.get(f"/job/enable?guid={reader.guid}&active=0")
    run = finished_run(reader, execution_id="1636653527797")
    finished_run(reader.direct_writer, exec_guid=run.guid)
    # when
    response = datazen.get(route)
    # then
    assert response.status_code == 200
    (row,) = response.json()
    assert_shape(row, DOC_SUMMARY_ROW)
    expected = {
        "Guid": reader.guid,
        "TargetGuid": reader.direct_writer.guid,
        "JobType": 1,
        "JobKey": "Kafka-MSMQ",
        "Active": False,
        "IsDirectMode": True,
        "SourceSystemName": "Kafka",
        "TargetSystemName": "MSMQ",
        "LastExecutionId": "1636653527797",
        "LastTsPointer": '{"0":3331}',
        "IsQueueingSource": True,
        "IsDBSource": False,
        "TargetSystem": "MESSAGING",
        "Success": True,
        "DirectSuccess": True,
        "DirectErrorMessage": "",
        "ConnectionString": "kafka-cloud",
        "SourceSystem": "Kafka",
        "Status": "ready",
    }
    assert {k: row[k] for k in expected} == expected


def test_jobs_summary_of_a_job_never_run(datazen, direct) -> None:
    (row,) = datazen.get("/jobs/summary").json()
    assert row["Success"] is False and row["DirectErrorMessage"] is None
    assert row["LastRunTime"] == "0001-01-01T00:00:00"
    assert row["IsDBSource"] is True

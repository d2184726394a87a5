"""Every published DataZen export posts unchanged to POST /job and comes back from /jobs/info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobs.models import ConnectionString, Job

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "datazen"
JOB_SAMPLES = sorted(p for p in SAMPLES.glob("*.json") if p.name != "connections-export.json")
# What the gateway maintains and lays over the definition (checked separately below).
MAINTAINED = {"Guid", "Status", "LastRunTime", "LastExecutionId", "LastTsPointer",
              "LastTsDelPointer", "Active"}  # fmt: skip
# What DataZen derives from a definition and shows beside it (datazen/render.py).
COMPUTED_READER = {"IsDBSource", "IsHttpSource", "IsDriveSource", "IsQueueingSource",
                   "JobType", "IsDirty", "TrackLastTs", "AuditLogEnabled", "IsDirect",
                   "IsCDCSource"}  # fmt: skip
COMPUTED_WRITER = {"JobType", "IsDirty", "IsDirect", "AuditLogEnabled"}


def without(obj: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in names}


def test_samples_are_there() -> None:
    assert len(JOB_SAMPLES) >= 7, f"expected the vendor samples under {SAMPLES}"


@pytest.mark.parametrize("sample", JOB_SAMPLES, ids=lambda p: p.stem)
def test_sample_round_trips_through_jobs_info(datazen, sample: Path) -> None:
    # given
    sent = json.loads(sample.read_text())
    # when
    response = datazen.post("/job", sent, format="json")
    # then
    assert response.status_code == 200, response.content
    assert response.content == b"OK"
    reader = Job.objects.get(job_key=sent["JobReader"]["JobKey"], kind="reader")
    info = datazen.get(f"/jobs/info?guid={reader.guid}").json()
    assert len(info) == 1
    package = info[0]
    got_reader = package["JobReader"]
    assert without(got_reader, MAINTAINED | COMPUTED_READER) == without(
        sent["JobReader"], MAINTAINED
    )
    assert got_reader["Guid"] == reader.guid == package["Guid"]
    assert len(reader.guid) == 32
    assert got_reader["Status"] == "ready"
    assert got_reader["LastRunTime"] == "0001-01-01T00:00:00"
    assert got_reader["Active"] is sent["JobReader"]["Active"]
    assert package["JobKey"] == sent["JobReader"]["JobKey"]
    assert package["JobType"] == 1
    assert package["LastStatus"] is None
    if sent["JobWriter"] is None:
        assert package["JobWriter"] is None
        assert package["IsDirectMode"] is False
        assert package["DirectLastStatus"] is None
    else:
        got_writer = package["JobWriter"]
        assert without(got_writer, MAINTAINED | COMPUTED_WRITER) == without(
            sent["JobWriter"], MAINTAINED
        )
        # PipelineDef stays a JSON string where it was sent as one.
        assert type(got_writer["PipelineDef"]) is type(sent["JobWriter"]["PipelineDef"])
        assert got_writer["JobKey"] == "__" + sent["JobReader"]["JobKey"]
        assert got_writer["Guid"] == reader.direct_writer.guid != reader.guid
        assert got_writer["LastExecutionId"] is None
        assert package["IsDirectMode"] is True
    assert set(package) == {"Guid", "JobType", "JobKey", "Active", "JobReader", "JobWriter",
                            "LastStatus", "IsDirectMode", "DirectLastStatus"}  # fmt: skip


def test_all_samples_together_list_once_each(datazen) -> None:
    # given
    for sample in JOB_SAMPLES:
        assert (
            datazen.post("/job", json.loads(sample.read_text()), format="json").status_code == 200
        )
    # when
    info = datazen.get("/jobs/info").json()
    summary = datazen.get("/jobs/summary").json()
    # then: a direct job is one entry (its reader), never its writer again
    keys = sorted(json.loads(p.read_text())["JobReader"]["JobKey"] for p in JOB_SAMPLES)
    assert sorted(p["JobKey"] for p in info) == keys
    assert sorted(r["JobKey"] for r in summary) == keys


def test_same_sample_twice_is_a_conflict(datazen) -> None:
    # given
    sent = json.loads((SAMPLES / "getAccount.json").read_text())
    datazen.post("/job", sent, format="json")
    # when
    again = datazen.post("/job", sent, format="json")
    # then
    assert again.status_code == 409
    assert "getAccount" in again.json()["Error"]
    assert Job.objects.filter(job_key="getAccount").count() == 1


def test_connection_export_shows_the_connections_shape(datazen) -> None:
    # given: the exported connection, stored the way the admin console stores it
    exported = json.loads((SAMPLES / "connections-export.json").read_text())[0]
    conn = ConnectionString(
        key=exported["Key"],
        system=exported["System"],
        connection_type=exported["ConnectionType"],
        display_name=exported["DisplayName"],
        display_value=exported["DisplayCS"],
    )
    conn.value = exported["Data"]
    conn.save()
    # when
    listed = datazen.get("/connections").json()
    # then: same members, same values except Data (our own Fernet token, not the vendor's)
    assert len(listed) == 1
    assert set(listed[0]) == set(exported)
    assert without(listed[0], {"Data"}) == without(exported, {"Data"})
    assert listed[0]["Data"] == conn.encrypted_value != exported["Data"]


# The computed members for each vendor sample: SQL Server readers read a database, the
# form_* and getAccount readers an HTTP endpoint; all keep an audit log; getAccount alone has
# no direct writer. A writer shows its type and IsDirect false, as the vendor's samples do.
EXPECTED_SOURCE = {
    "UPSERT_DataModelObject_Territory": ("IsDBSource", True),
    "UPSERT_DataModelObjects": ("IsDBSource", True),
    "form_getAllForms": ("IsHttpSource", True),
    "form_surveyGetALLModelObjects": ("IsHttpSource", True),
    "form_surveyGetALLModels": ("IsHttpSource", True),
    "form_surveyGetObjects_Territory": ("IsHttpSource", True),
    "getAccount": ("IsHttpSource", False),
}


@pytest.mark.parametrize("sample", JOB_SAMPLES, ids=lambda p: p.stem)
def test_jobs_info_shows_the_computed_members(datazen, sample: Path) -> None:
    # given a vendor sample posted as it is
    sent = json.loads(sample.read_text())
    assert datazen.post("/job", sent, format="json").status_code == 200
    reader = Job.objects.get(job_key=sent["JobReader"]["JobKey"], kind="reader")
    # when
    (package,) = datazen.get(f"/jobs/info?guid={reader.guid}").json()
    # then
    source, direct = EXPECTED_SOURCE[sample.stem]
    sources = ("IsDBSource", "IsHttpSource", "IsDriveSource", "IsQueueingSource")
    got = package["JobReader"]
    assert {name: got[name] for name in sources} == {name: name == source for name in sources}
    assert (got["JobType"], got["IsDirty"], got["TrackLastTs"], got["IsCDCSource"]) == (
        1,
        False,
        False,
        False,
    )
    assert got["AuditLogEnabled"] is True
    assert got["IsDirect"] is direct
    if package["JobWriter"] is not None:
        writer = package["JobWriter"]
        assert {name: writer[name] for name in COMPUTED_WRITER} == {
            "JobType": 2,
            "IsDirty": False,
            "IsDirect": False,
            "AuditLogEnabled": False,
        }

"""Agent API: license, status, version, connection strings, start/stop (document examples)."""

from __future__ import annotations

import pytest

from jobs import agent
from jobs.models import AgentState, ConnectionString, Job
from tests.test_datazen_history import assert_shape
from tests.test_datazen_jobs import direct_job, post_job

DOC_LICENSE_REQUEST = """John Miller
ACME
jmiller@acme.info
[SyncSource;SyncTarget;Enterprise]
AF2FFFFF62606FFFFF152B007BFFFFF0A3B28F
FFFFFF10F1731FFFFFFFFFFCCCBF8ABFFFFFFECBA6605E0FFFFFFFFFF1EEAFFF
"""
DOC_LICENSE = {
    "AcceptSource": True,
    "AcceptTarget": True,
    "AllowDatabases": True,
    "SchedulerAllowed": True,
    "DataPipelineAllowed": True,
    "DirectJobsOnly": False,
    "AllowMessagingHubs": True,
    "AllowDriveFiles": True,
    "AllowPGPEncryption": True,
    "MaxJobs": -1,
    "AllowDataCopy": True,
    "AllowRBAC": True,
    "AllowHeuristics": True,
    "Edition": "Enterprise",
    "LicenseFile": "...",
    "IsValid": False,
    "LicenseValidationError": None,
    "LicenseValidationResult": 4,
    "LastValidationMessage": "License is invalid",
}
# The /status example shows the message as null (valid license), /licenseinfo as text.
LICENSE_SHAPE = dict(DOC_LICENSE, LastValidationMessage=None)
DOC_VERSION = {
    "URL": "http://localhost:9559",
    "Running": True,
    "Major": 1,
    "Minor": 0,
    "Revision": 23770,
    "Build": 7866,
    "JobsRunning": 0,
}
DOC_STATUS = {
    "URL": "http://localhost:9559",
    "Running": True,
    "StageDatabaseServer": "devlap04",
    "StageDatabaseName": "EnzoStaging",
    "StageLogin": "",
    "LicenseFile": "...",
    "DataZenLicense": LICENSE_SHAPE,
    "Version": DOC_VERSION,
}
DOC_CONNECTION = {
    "Key": "MyAWSS3Connection",
    "Data": '{"service":"awss3","displayName":"AWS S3 Bucket"}',
    "System": "AWS S3 Bucket",
    "UseCount": 4,
    "ConnectionType": "Drive",
}
# The vendor's own connection export adds these three members (see connections-export.json).
EXPORT_MEMBERS = {"DisplayName", "DisplayCS", "Engine"}
S3_SECRET = '{"service":"awss3","bucket":"testdata","accessKey":"AK","accessSecret":"SECRET"}'


def make_connection(key: str, system: str, kind: str, value: str) -> ConnectionString:
    conn = ConnectionString(key=key, system=system, connection_type=kind)
    conn.value = value
    conn.save()
    return conn


@pytest.fixture
def connections(datazen) -> dict[str, ConnectionString]:
    """The document's three connections, and jobs that use them."""
    found = {
        "AWSS3": make_connection("AWSS3", "AWS S3 Bucket", "Drive", S3_SECRET),
        "localtesttmp": make_connection("localtesttmp", "Local Path", "Drive", "/tmp"),
        "devlap04": make_connection("devlap04", "SQLServer", "DB", "Server=devlap04;Trusted=yes"),
    }
    for n in range(3):
        body = direct_job(f"job{n}")
        body["JobReader"]["ConnectionString"] = "devlap04"
        body["JobWriter"]["ConnectionString"] = "AWSS3"
        post_job(datazen, body)
    return found


# --- license ------------------------------------------------------------------------------


def test_post_licenseinfo_document_example(datazen) -> None:
    # when
    response = datazen.post("/licenseinfo", DOC_LICENSE_REQUEST, content_type="text/plain")
    # then: every flag of the example; the gateway checks the form, not the vendor's signature
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"DataZenLicense"}
    lic = body["DataZenLicense"]
    assert_shape(lic, LICENSE_SHAPE)
    differs = ("LicenseFile", "IsValid", "LastValidationMessage")
    same = {k: v for k, v in DOC_LICENSE.items() if k not in differs}
    assert {k: lic[k] for k in same} == same
    assert lic["LicenseFile"] == DOC_LICENSE_REQUEST
    assert lic["IsValid"] is True and lic["LastValidationMessage"] is None
    assert AgentState.load().license_text == ""  # parsing a license applies nothing


def test_post_licenseinfo_reports_what_is_wrong(datazen) -> None:
    text = "John Miller\nACME\nnot-an-email\nSyncSource\nXYZ\n"
    lic = datazen.post("/licenseinfo", text, content_type="text/plain").json()["DataZenLicense"]
    assert lic["IsValid"] is False
    assert "not an email" in lic["LastValidationMessage"]
    assert "brackets" in lic["LastValidationMessage"]
    assert "hexadecimal" in lic["LastValidationMessage"]
    assert lic["AcceptSource"] is False and lic["Edition"] == ""


def test_post_licenseinfo_features_without_enterprise(datazen) -> None:
    text = DOC_LICENSE_REQUEST.replace(
        "[SyncSource;SyncTarget;Enterprise]", "[SyncSource;Scheduler;MaxJobs=5]"
    )
    lic = datazen.post("/licenseinfo", text, content_type="text/plain").json()["DataZenLicense"]
    assert (lic["AcceptSource"], lic["AcceptTarget"], lic["SchedulerAllowed"]) == (
        True,
        False,
        True,
    )
    assert (lic["AllowRBAC"], lic["MaxJobs"], lic["Edition"]) == (False, 5, "")


def test_post_licenseinfo_empty_body_is_400(datazen) -> None:
    assert datazen.post("/licenseinfo", "", content_type="text/plain").status_code == 400


def test_get_licenseinfo_shows_the_applied_license(datazen) -> None:
    # given: no license, then the operator applies one in the console
    empty = datazen.get("/licenseinfo").json()["DataZenLicense"]
    assert empty["IsValid"] is False and empty["LicenseValidationResult"] == 0
    AgentState.objects.filter(pk=1).update(license_text=DOC_LICENSE_REQUEST)
    # when
    lic = datazen.get("/licenseinfo").json()["DataZenLicense"]
    # then
    assert_shape(lic, LICENSE_SHAPE)
    assert lic["Edition"] == "Enterprise" and lic["IsValid"] is True


# --- status, version, start, stop ----------------------------------------------------------


def test_status_document_example_shape(datazen) -> None:
    AgentState.objects.update_or_create(pk=1, defaults={"license_text": DOC_LICENSE_REQUEST})
    response = datazen.get("/status")
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, DOC_STATUS)
    assert_shape(body["DataZenLicense"], LICENSE_SHAPE)
    assert_shape(body["Version"], DOC_VERSION)
    assert body["URL"] == body["Version"]["URL"] == "http://testserver"
    assert body["LicenseFile"] == DOC_LICENSE_REQUEST
    assert body["StageDatabaseName"]


def test_version_document_example_shape(datazen) -> None:
    body = datazen.get("/version").json()
    assert set(body) == {"Version"}
    assert_shape(body["Version"], DOC_VERSION)


def test_stop_and_start_change_the_persisted_agent_state(datazen) -> None:
    # when
    stopped = datazen.post("/stop")
    # then
    assert stopped.status_code == 200 and stopped.content == b"OK"
    assert AgentState.objects.get(pk=1).running is False
    assert agent.is_running() is False
    assert datazen.get("/version").json()["Version"]["Running"] is False
    assert datazen.get("/status").json()["Running"] is False
    # and back
    started = datazen.post("/start")
    assert started.status_code == 200 and started.content == b"OK"
    assert AgentState.objects.get(pk=1).running is True


def test_stopped_agent_still_lets_a_job_be_started_by_hand(datazen) -> None:
    # /stop stops the schedule, not the API: a manual start still runs
    reader = post_job(datazen, direct_job())
    datazen.post("/stop")
    assert datazen.post(f"/job/start?guid={reader.guid}").status_code == 200


# --- connections ---------------------------------------------------------------------------


def test_connections_document_example_by_key(datazen, connections) -> None:
    # when
    response = datazen.get("/connections?key=AWSS3")
    # then: Data is the encrypted token, never the secret
    assert response.status_code == 200
    (row,) = response.json()
    assert set(row) == set(DOC_CONNECTION) | EXPORT_MEMBERS
    assert_shape({k: row[k] for k in DOC_CONNECTION}, DOC_CONNECTION)
    assert row["Data"] == connections["AWSS3"].encrypted_value
    assert "SECRET" not in response.content.decode()
    assert (row["System"], row["ConnectionType"], row["UseCount"]) == ("AWS S3 Bucket", "Drive", 3)


def test_connections_decrypt_with_a_key_that_may(datazen, connections) -> None:
    (row,) = datazen.get("/connections?key=AWSS3&decrypt=1").json()
    assert row["Data"] == S3_SECRET


def test_connections_type_filter_and_unknown_key(datazen, connections) -> None:
    assert [r["Key"] for r in datazen.get("/connections?type=DB").json()] == ["devlap04"]
    assert [r["Key"] for r in datazen.get("/connections?type=drive").json()] == [
        "AWSS3",
        "localtesttmp",
    ]
    assert datazen.get("/connections?key=nothing").json() == []


def test_connections_metadata_document_example(datazen, connections) -> None:
    # when
    response = datazen.get("/connections/metadata")
    # then: the document's three rows, Data always empty, UseCount counted
    assert response.status_code == 200
    rows = response.json()
    assert [(r["Key"], r["System"], r["ConnectionType"], r["UseCount"]) for r in rows] == [
        ("AWSS3", "AWS S3 Bucket", "Drive", 3),
        ("devlap04", "SQLServer", "DB", 3),
        ("localtesttmp", "Local Path", "Drive", 0),
    ]
    assert all(r["Data"] == "" for r in rows)
    assert [r["Key"] for r in datazen.get("/connections/metadata?key=devlap04").json()] == [
        "devlap04"
    ]
    # decrypt is ignored here: metadata never carries the secret
    assert datazen.get("/connections/metadata?decrypt=1").json()[0]["Data"] == ""


def test_use_count_is_one_aggregate_query(
    datazen, connections, django_assert_max_num_queries
) -> None:
    for n in range(20):
        body = direct_job(f"more{n}")
        body["JobReader"]["ConnectionString"] = "localtesttmp"
        post_job(datazen, body)
    # auth (key lookup, last-used) + connections + one aggregate for the counts
    with django_assert_max_num_queries(5):
        rows = datazen.get("/connections/metadata").json()
    assert {r["Key"]: r["UseCount"] for r in rows}["localtesttmp"] == 20


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
@pytest.mark.parametrize("route", ["/connections", "/connections/metadata"])
def test_connections_are_read_only_over_the_api(datazen, connections, method, route) -> None:
    response = getattr(datazen, method)(route, {"Key": "AWSS3", "Data": "x"}, format="json")
    assert response.status_code == 405
    assert ConnectionString.objects.count() == 3
    assert ConnectionString.objects.get(key="AWSS3").value == S3_SECRET


def test_connection_key_of_a_job_counts_once_per_job(datazen) -> None:
    make_connection("sql2017", "SQLServer", "DB", "Server=x")
    post_job(datazen, direct_job("a"))
    Job.objects.filter(kind="reader").update(connection_key="sql2017")
    (row,) = datazen.get("/connections/metadata").json()
    assert row["UseCount"] == 1

"""SharedKey on every route: 401 without a valid key, 403 outside the key's scope or rights."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import AccessScope, AgentState, ConnectionString, Job
from tests.conftest import key_client
from tests.test_datazen_jobs import DOC_POST_JOB

# Every route, with the API it belongs to and one method it answers.
AGENT_ROUTES = [
    ("get", "/licenseinfo"),
    ("post", "/licenseinfo"),
    ("get", "/status"),
    ("get", "/version"),
    ("get", "/connections"),
    ("get", "/connections/metadata"),
    ("post", "/start"),
    ("post", "/stop"),
]
JOBS_ROUTES = [
    ("post", "/job"),
    ("put", "/job"),
    ("delete", "/job"),
    ("get", "/job/dynamic"),
    ("post", "/job/dynamic"),
    ("get", "/job/dynamic/executions"),
    ("post", "/job/enable"),
    ("get", "/job/enable"),
    ("post", "/job/start"),
    ("post", "/job/stop"),
    ("post", "/job/stopprocessing"),
    ("post", "/job/settspointer"),
    ("get", "/job/output"),
    ("get", "/job/log"),
    ("get", "/job/history"),
    ("get", "/jobs/info"),
    ("get", "/jobs/summary"),
    ("get", "/jobssummary"),
    ("get", "/job/status"),
    ("get", "/jobs/status"),
]
ALL_ROUTES = [(m, r, "agent") for m, r in AGENT_ROUTES] + [(m, r, "jobs") for m, r in JOBS_ROUTES]


def call(client: APIClient, method: str, route: str):
    return getattr(client, method)(route)


def assert_error(response, status: int, words: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["StatusCode"] == status
    assert words in body["Error"]


@pytest.mark.parametrize(("method", "route", "api"), ALL_ROUTES)
def test_no_key_is_401(db, method, route, api) -> None:
    response = call(APIClient(), method, route)
    assert_error(response, 401, "Missing Authorization header")
    assert response["WWW-Authenticate"] == "SharedKey"


@pytest.mark.parametrize(("method", "route", "api"), ALL_ROUTES)
def test_wrong_key_is_401(db, method, route, api) -> None:
    key_client(name="real")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="SharedKey 123456789426478564563123")
    assert_error(call(client, method, route), 401, "Unknown access key")


@pytest.mark.parametrize(
    "header",
    ["Bearer abc", "SharedKey", "SharedKey ", "SharedKey a b", "Basic dXNlcjpwYXNz"],
)
def test_malformed_header_is_401(db, header) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_error(client.get("/version"), 401, "Malformed Authorization header")


def test_inactive_key_is_401(db) -> None:
    client, key = key_client(name="old")
    key.is_active = False
    key.save()
    assert_error(client.get("/version"), 401, "Unknown access key")


@pytest.mark.parametrize(("method", "route"), JOBS_ROUTES)
def test_agent_only_key_on_a_jobs_route_is_403(db, method, route) -> None:
    client, _ = key_client(name="agent", scope=AccessScope.AGENT)
    assert_error(call(client, method, route), 403, "not allowed to call the jobs API")


@pytest.mark.parametrize(("method", "route"), AGENT_ROUTES)
def test_jobs_only_key_on_an_agent_route_is_403(db, method, route) -> None:
    client, _ = key_client(name="jobs", scope=AccessScope.JOBS)
    assert_error(call(client, method, route), 403, "not allowed to call the agent API")


def test_scoped_keys_work_on_their_own_api(db) -> None:
    agent_client, _ = key_client(name="agent", scope=AccessScope.AGENT)
    jobs_client, _ = key_client(name="jobs", scope=AccessScope.JOBS)
    assert agent_client.get("/version").status_code == 200
    assert agent_client.post("/stop").status_code == 200
    assert jobs_client.get("/jobs/summary").status_code == 200
    assert jobs_client.post("/job", DOC_POST_JOB, format="json").status_code == 200


@pytest.mark.parametrize(
    ("method", "route"),
    [(m, r) for m, r in AGENT_ROUTES + JOBS_ROUTES if m != "get"] + [("get", "/job/enable")],
)
def test_read_only_key_may_only_read(db, method, route) -> None:
    client, _ = key_client(name="ro", read_only=True)
    assert_error(call(client, method, route), 403, "read-only")


def test_read_only_key_changes_nothing(db) -> None:
    # given
    client, _ = key_client(name="ro", read_only=True)
    # when
    client.post("/job", DOC_POST_JOB, format="json")
    client.post("/stop")
    # then
    assert not Job.objects.exists()
    assert AgentState.load().running is True
    assert client.get("/jobs/summary").status_code == 200
    assert client.get("/status").status_code == 200


def test_decrypt_without_the_right_is_403(db) -> None:
    # given
    conn = ConnectionString(key="sql2017", system="SQLServer", connection_type="DB")
    conn.value = "Server=sql2017;Password=hunter2"
    conn.save()
    client, _ = key_client(name="plain", can_decrypt=False)
    # when
    refused = client.get("/connections?decrypt=1")
    # then
    assert_error(refused, 403, "not allowed to decrypt")
    assert "hunter2" not in refused.content.decode()
    encrypted = client.get("/connections").json()[0]["Data"]
    assert encrypted == conn.encrypted_value and "hunter2" not in encrypted
    allowed, _ = key_client(name="decrypt", can_decrypt=True)
    assert (
        allowed.get("/connections?decrypt=1").json()[0]["Data"] == "Server=sql2017;Password=hunter2"
    )

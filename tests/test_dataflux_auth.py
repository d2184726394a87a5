"""HTTP Basic on every route, remembered logins that still notice changes, and the eTag."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

import dataflux.auth
from dataflux.auth import issue_etag
from jobs.flows.runtime.definitions import flow_id
from tests.test_dataflux_support import BASE, basic_client, fresh_state, make_user, upload

GENDER = flow_id("Determine_Gender.ddf")
ROUTES = [
    ("get", "/"),
    ("get", ""),
    ("get", "/jobFlowDefns"),
    ("post", "/jobFlowDefns"),
    ("head", f"/jobFlowDefns/{GENDER}"),
    ("get", f"/jobFlowDefns/{GENDER}"),
    ("delete", f"/jobFlowDefns/{GENDER}"),
    ("post", f"/jobFlowDefns/{GENDER}"),
    ("get", f"/jobFlowDefns/{GENDER}/content"),
    ("put", f"/jobFlowDefns/{GENDER}/content"),
    ("get", f"/jobFlowDefns/{GENDER}/metadata"),
    ("get", f"/jobFlowDefns/{GENDER}/engines"),
    ("get", "/serverInfo"),
    ("get", "/engines"),
    ("delete", "/engines"),
    ("put", "/engines/onCompletion"),
    ("get", "/engines/1"),
    ("delete", "/engines/1"),
    ("put", "/engines/1/onCompletion"),
    ("get", "/somethingElse"),
]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_state()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_credentials(db: None, method: str, path: str) -> None:
    make_user("ann")
    upload(basic_client("ann"), "Determine_Gender.ddf")
    for client in (APIClient(), basic_client("ann", "wrong")):
        response = getattr(client, method)(f"{BASE}{path}")
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Basic realm="SASDataMgmtRTDataJob"'
        if method != "head":
            assert response.json()["httpStatusCode"] == 401


def test_a_verified_login_is_not_hashed_again(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a user who has called once (the slow password hash ran then)
    make_user("ann")
    client = basic_client("ann")
    assert client.get(f"{BASE}/serverInfo").status_code == 200
    calls: list[str] = []

    def counting(request: object, **credentials: str) -> object:
        calls.append(credentials["username"])
        return authenticate(request, **credentials)

    monkeypatch.setattr(dataflux.auth, "authenticate", counting)
    # when the same credentials come again
    for _ in range(3):
        assert client.get(f"{BASE}/serverInfo").status_code == 200
    # then the remembered login is used, and the user is still the right one
    assert calls == []
    assert client.get(f"{BASE}/").status_code == 200


def _count_password_checks(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.0) -> list[str]:
    """The user names whose password is hashed from now on, each check taking `seconds` more
    (the tests' MD5 hasher is instant; the real one takes hundreds of milliseconds)."""
    calls: list[str] = []

    def counting(request: object, **credentials: str) -> object:
        calls.append(credentials["username"])
        time.sleep(seconds)
        return authenticate(request, **credentials)

    monkeypatch.setattr(dataflux.auth, "authenticate", counting)
    return calls


def _at_once(calls: list[Callable[[], int]]) -> list[int]:
    """Each call on its own thread, all started together; their status codes."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int] = []

    def run(call: Callable[[], int]) -> None:
        barrier.wait()
        try:
            statuses.append(call())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_requests_arriving_together_hash_the_password_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # given ann, not remembered (a first call, or her login unused for a while), and a slow hash
    make_user("ann")
    calls = _count_password_checks(monkeypatch, seconds=0.3)
    # when eight of her requests and three with a wrong password arrive at once
    ok = [basic_client("ann") for _ in range(8)]
    wrong = [basic_client("ann", "not-hers") for _ in range(3)]
    statuses = _at_once([lambda c=c: c.get(f"{BASE}/serverInfo").status_code for c in ok + wrong])
    # then hers are all served after one check, and each wrong one is checked and refused
    assert statuses == [200] * 8 + [401] * 3
    assert calls == ["ann"] * 4


@pytest.mark.django_db(transaction=True)
@override_settings(GATEWAY_AUTH_HASH_WAIT_SECONDS=0.2)
def test_waiting_for_another_requests_check_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a password check that takes longer than a sign-in may wait for one
    make_user("ann")
    calls = _count_password_checks(monkeypatch, seconds=1.5)
    # when two requests with the same credentials arrive at once
    clients = [basic_client("ann") for _ in range(2)]
    statuses = _at_once([lambda c=c: c.get(f"{BASE}/serverInfo").status_code for c in clients])
    # then one is checked and served, the other is told to try again, as a full hashing slot does
    assert statuses == [200, 429]
    assert calls == ["ann"]


@override_settings(DATAFLUX_AUTH_CACHE_SECONDS=1)
def test_a_login_in_use_stays_remembered(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a login verified once, remembered for a second after each use
    make_user("ann")
    client = basic_client("ann")
    assert client.get(f"{BASE}/serverInfo").status_code == 200
    calls = _count_password_checks(monkeypatch)
    # when it is used every 0.4 s for longer than that second
    for _ in range(4):
        time.sleep(0.4)
        assert client.get(f"{BASE}/serverInfo").status_code == 200
    # then it was not checked again; unused for longer than the second, it is
    assert calls == []
    time.sleep(1.2)
    assert client.get(f"{BASE}/serverInfo").status_code == 200
    assert calls == ["ann"]


def test_malformed_credentials_are_401(db: None) -> None:
    client = APIClient()
    for header in ("Basic !!!", "Bearer abc", "Basic " + "YW5u"):
        client.credentials(HTTP_AUTHORIZATION=header)
        assert client.get(f"{BASE}/serverInfo").status_code == 401


def test_remembered_login_notices_password_change_and_deactivation(db: None) -> None:
    # given a login that has been verified once
    user = make_user("ann")
    client = basic_client("ann")
    assert client.get(f"{BASE}/serverInfo").status_code == 200
    # when the password changes
    user.set_password("new-password")
    user.save()
    # then the old one stops working at once
    assert client.get(f"{BASE}/serverInfo").status_code == 401
    assert basic_client("ann", "new-password").get(f"{BASE}/serverInfo").status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert basic_client("ann", "new-password").get(f"{BASE}/serverInfo").status_code == 401


def test_without_etag_protection_no_etag_is_needed(db: None) -> None:
    make_user("ann")
    assert basic_client("ann").get(f"{BASE}/jobFlowDefns").status_code == 200


@override_settings(DATAFLUX_ETAG=True)
def test_etag_from_the_root_is_required_on_other_calls(db: None) -> None:
    # given
    make_user("ann")
    client = basic_client("ann")
    # when
    root = client.get(f"{BASE}/")
    etag = root["ETag"]
    # then
    assert root.status_code == 200
    assert int(etag, 16) > 0
    missing = client.get(f"{BASE}/jobFlowDefns")
    assert missing.status_code == 401
    assert "eTag" in missing.json()["message"]
    assert client.get(f"{BASE}/jobFlowDefns", HTTP_IF_MATCH=etag).status_code == 200
    assert client.get(f"{BASE}/jobFlowDefns", HTTP_IF_MATCH=f'"{etag}"').status_code == 200
    assert client.get(f"{BASE}/serverInfo", HTTP_ETAG=etag).status_code == 200
    tampered = etag[:-1] + ("0" if etag[-1] != "0" else "1")
    assert client.get(f"{BASE}/serverInfo", HTTP_IF_MATCH=tampered).status_code == 401


@override_settings(DATAFLUX_ETAG=True)
def test_etag_of_another_user_is_refused(db: None) -> None:
    make_user("ann")
    make_user("bob")
    bobs = basic_client("bob").get(f"{BASE}/")["ETag"]
    response = basic_client("ann").get(f"{BASE}/serverInfo", HTTP_IF_MATCH=bobs)
    assert response.status_code == 401


@override_settings(DATAFLUX_ETAG=True, DATAFLUX_ETAG_SECONDS=1800)
def test_expired_etag_is_401(db: None) -> None:
    make_user("ann")
    old = issue_etag("ann", now=time.time() - 1801)
    response = basic_client("ann").get(f"{BASE}/serverInfo", HTTP_IF_MATCH=old)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
    fresh = issue_etag("ann", now=time.time() - 1700)
    assert basic_client("ann").get(f"{BASE}/serverInfo", HTTP_IF_MATCH=fresh).status_code == 200

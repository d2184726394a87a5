"""Failed sign-ins are limited per user and per client address; good credentials stay cheap."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from gateway import throttle
from gateway.models import SignInFailure
from jobs.models import AccessScope
from tests.conftest import key_client
from tests.test_dataflux_support import basic_client, make_user

pytestmark = pytest.mark.django_db

SERVER_INFO = "/SASDataMgmtRTDataJob/rest/serverInfo"


def basic(username: str, password: str, address: str = "10.0.0.1") -> Any:
    client = APIClient(REMOTE_ADDR=address)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client.get(SERVER_INFO)


def test_wrong_passwords_for_one_user_are_answered_429_past_the_limit(settings: Any) -> None:
    # given
    settings.GATEWAY_AUTH_MAX_FAILURES = 3
    make_user("ann")
    # when: three wrong passwords from three addresses
    answers = [basic("ann", f"wrong{i}", f"10.0.0.{i}").status_code for i in range(3)]
    # then: the fourth is refused without a check, even with the right password
    assert answers == [401, 401, 401]
    refused = basic("ann", "ann-secret", "10.0.0.9")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/vnd.sas.error+json"
    assert refused.json()["errorCode"] == 11429
    assert int(refused["Retry-After"]) > 0


def test_a_user_signed_in_before_the_attack_keeps_working(settings: Any) -> None:
    # given: ann signed in (her login is remembered), then someone guesses her password
    settings.GATEWAY_AUTH_MAX_FAILURES = 3
    make_user("ann")
    ann = basic_client("ann")
    assert ann.get(SERVER_INFO).status_code == 200
    for i in range(5):
        basic("ann", f"wrong{i}")
    # then
    assert ann.get(SERVER_INFO).status_code == 200


def test_one_address_guessing_many_user_names_is_limited(settings: Any) -> None:
    settings.GATEWAY_AUTH_MAX_FAILURES_PER_ADDRESS = 4
    answers = [basic(f"user{i}", "x", "10.9.9.9").status_code for i in range(6)]
    assert answers == [401] * 4 + [429] * 2
    # another address is not affected
    make_user("bob")
    assert basic("bob", "bob-secret", "10.1.1.1").status_code == 200


def test_the_limit_ends_with_its_window(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.GATEWAY_AUTH_MAX_FAILURES = 2
    make_user("ann")
    clock = [1000.0]
    monkeypatch.setattr(throttle.time, "time", lambda: clock[0])
    basic("ann", "a", "10.0.0.1")
    basic("ann", "b", "10.0.0.2")
    assert basic("ann", "ann-secret", "10.0.0.3").status_code == 429
    clock[0] += settings.GATEWAY_AUTH_FAILURE_WINDOW + 1
    assert basic("ann", "ann-secret", "10.0.0.3").status_code == 200


def test_shared_key_misses_are_limited_per_address(settings: Any) -> None:
    # given
    settings.GATEWAY_AUTH_MAX_FAILURES_PER_ADDRESS = 3
    good, _ = key_client(name="good", scope=AccessScope.ALL)
    bad = APIClient(REMOTE_ADDR="10.7.7.7")
    bad.credentials(HTTP_AUTHORIZATION="SharedKey not-a-key")
    # when
    answers = [bad.get("/version").status_code for _ in range(5)]
    # then
    assert answers == [401, 401, 401, 429, 429]
    limited = bad.get("/version")
    assert limited.json()["StatusCode"] == 429
    assert "Too many failed sign-in attempts" in limited.json()["Error"]
    assert good.get("/version").status_code == 200  # the test client's own address


def test_the_counts_are_shared_by_every_process_of_a_fleet(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: three wrong passwords answered by one web process
    settings.GATEWAY_AUTH_MAX_FAILURES = 3
    make_user("ann")
    for i in range(3):
        assert basic("ann", f"wrong{i}", f"10.0.0.{i}").status_code == 401
    # when: the next attempt reaches another process (its own memory, the same database)
    monkeypatch.setattr(throttle, "failures", throttle.FailureCounter())
    # then: it is refused there too
    assert basic("ann", "ann-secret", "10.0.0.9").status_code == 429
    assert SignInFailure.objects.count() == 4  # ann, and the three addresses


def failure_count_queries(call: Callable[[], Any]) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        call()
    table = SignInFailure._meta.db_table
    return [q["sql"] for q in queries.captured_queries if table in q["sql"]]


def test_a_process_remembers_a_blocked_key_without_asking_the_database_again(
    settings: Any,
) -> None:
    settings.GATEWAY_AUTH_MAX_FAILURES_PER_ADDRESS = 2
    bad = APIClient(REMOTE_ADDR="10.7.7.8")
    bad.credentials(HTTP_AUTHORIZATION="SharedKey not-a-key")
    assert [bad.get("/version").status_code for _ in range(3)] == [401, 401, 429]
    # the memo answers: no query of the failure counts for the next attempts
    assert failure_count_queries(lambda: bad.get("/version")) == []
    assert bad.get("/version").status_code == 429


def test_a_matching_shared_key_never_reads_the_failure_counts() -> None:
    good, _ = key_client(name="good", scope=AccessScope.ALL)
    assert failure_count_queries(lambda: good.get("/version")) == []


def test_hash_checks_beyond_the_concurrency_bound_wait_then_give_up(settings: Any) -> None:
    settings.GATEWAY_AUTH_HASH_CONCURRENCY = 1
    settings.GATEWAY_AUTH_HASH_WAIT_SECONDS = 0.05
    throttle._hash_slots = None
    make_user("ann")
    try:
        with throttle.hashing():  # another request holds the only slot
            assert basic("ann", "ann-secret").status_code == 429
        assert basic("ann", "ann-secret").status_code == 200
    finally:
        throttle._hash_slots = None

"""The web's wait for a fleet DataFlux run's answer (jobs/flows/runtime/fleet.py) outlasts
redis-py's socket timeout, and falls back to the run's record when Redis goes away."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import redis

from jobs.flows.runtime import fleet
from jobs.models import Execution, ExecutionStatus
from tests import services
from tests.processes import free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_an_answer_later_than_the_socket_timeout_is_received():
    # given a client as the web makes it (redis-py's default socket_timeout: 5 s in 8.x),
    # here 1 s so the test is short, and a run that answers after 2.5 s
    client = redis.Redis.from_url(services.redis_url(db=0), socket_timeout=1)
    guid = uuid.uuid4().hex
    answer = {"outputs": {"rows": 1}}

    def answer_late() -> None:
        time.sleep(2.5)
        client.rpush(fleet.REPLY_PREFIX + guid, json.dumps(answer))

    threading.Thread(target=answer_late, daemon=True).start()
    # when the web waits with a budget of 10 s
    began = time.monotonic()
    got = fleet._wait_for_reply(client, guid, budget=10)
    # then it got the run's answer, not a TimeoutError
    assert got == answer
    assert 2 < time.monotonic() - began < 6


def test_no_answer_within_the_budget_is_none():
    client = redis.Redis.from_url(services.redis_url(db=0), socket_timeout=1)
    began = time.monotonic()
    assert fleet._wait_for_reply(client, uuid.uuid4().hex, budget=1.5) is None
    assert time.monotonic() - began < 4


@pytest.mark.django_db
def test_without_redis_the_wait_answers_what_the_record_says():
    # given a run recorded as succeeded, and the reply Redis unreachable

    guid = uuid.uuid4().hex
    Execution.objects.create(
        guid=guid,
        job_guid="f" * 32,
        job_key="flow.ddf",
        listener_type="flow",
        status=ExecutionStatus.SUCCEEDED,
        result={"outputs": {"rows": 2}},
    )
    gone = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    # when / then the client gets the recorded outputs, as the history shows them
    assert fleet._wait_for_reply(gone, guid, budget=5) == {"outputs": {"rows": 2}}

"""Messaging producers against the real brokers: a database → broker direct job publishes one
message per row (broker-confirmed), compared message by message with the rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from jobs.models import ExecutionStatus, Job
from jobs.systems.messaging.producer import render_script
from tests.messagingjobs import SERVICES, BrokerPlace, broker_place, store_connection
from tests.syncdb import direct_job, execute, messages, run, writer_execution

pytestmark = pytest.mark.django_db

FILMS = [
    {"film_id": 1, "title": 'Say "hi"', "rate": 0.99, "language_id": None},
    {"film_id": 2, "title": "A & B <c>", "rate": 2.5, "language_id": 3},
    {"film_id": 3, "title": "plain", "rate": 4.0, "language_id": 1},
]
SCRIPT = (
    '{"film_id": {{film_id}}, "title": "{{title}}", "rate": {{rate}}, '
    '"language_id": {{language_id}}}'
)


@pytest.fixture
def source(sqlite_url: str) -> str:
    execute(
        sqlite_url,
        "CREATE TABLE film (film_id INTEGER PRIMARY KEY, title TEXT, rate REAL, language_id INT)",
    )
    execute(
        sqlite_url,
        "INSERT INTO film VALUES (:film_id, :title, :rate, :language_id)",
        params=FILMS,
    )
    return sqlite_url


@pytest.fixture(params=SERVICES)
def place(request: Any) -> Iterator[BrokerPlace]:
    with broker_place(request.param) as place:
        yield place


def producer_job(source: str, connection: str, **options: Any) -> Job:
    return direct_job(
        source,
        connection,
        sql="SELECT film_id, title, rate, language_id FROM film",
        target="",
        keys="film_id",
        propagate_delete=False,
        writer={"TargetSystem": "MESSAGING", "UpsertScript": SCRIPT},
        options={
            "MessagingUpsertSettings": {"SystemType": "", "TopicName": "", **options},
            "BatchCount": 2,
        },
    )


def test_database_to_broker_publishes_one_confirmed_message_per_row(
    source: str, place: BrokerPlace
) -> None:
    # given
    job = producer_job(source, place.store())
    place.subscribe()
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, (
        execution.error_message,
        messages(writer_execution(execution)),
    )
    got = place.read_all(len(FILMS))
    bodies = sorted((json.loads(m.body) for m in got), key=lambda b: b["film_id"])
    assert bodies == FILMS
    assert len({m.message_id for m in got}) == len(FILMS)
    assert writer_execution(execution).record_count == len(FILMS)


def test_a_second_run_publishes_nothing_again(source: str) -> None:
    with broker_place("rabbitmq") as place:
        # given
        job = producer_job(source, place.store())
        run(job)
        # when
        again = run(Job.objects.get(pk=job.pk))
        # then
        assert again.status == ExecutionStatus.SUCCEEDED
        assert len(place.read_all(len(FILMS))) == len(FILMS)


def test_kafka_and_event_hub_are_stored_but_refused_at_run_time(source: str) -> None:
    for service, name in (("kafka", "Kafka"), ("eventhub", "Azure Event Hub")):
        key = store_connection(f"messaging_{service}", {"service": service})
        execution = run(producer_job(source, key))
        assert execution.status == ExecutionStatus.FAILED
        assert (
            f"{name} is not supported by this gateway" in messages(writer_execution(execution))[-1]
        )


def test_placeholders_fill_json_literals_and_escaped_text() -> None:
    row = {"film_id": 7, "title": 'a "b"\n', "rate": None}
    assert json.loads(
        render_script(SCRIPT.replace(', "language_id": {{language_id}}', ""), row, "w")
    ) == {
        "film_id": 7,
        "title": 'a "b"\n',
        "rate": None,
    }

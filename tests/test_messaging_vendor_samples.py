"""The vendor document's two messaging direct jobs (GET /jobs/info samples), posted as shown
with only the brokers that do not run here swapped: MySQL reader → Azure Event Hub becomes
MariaDB → RabbitMQ; RabbitMQ consumer → Kafka with its pipeline becomes RabbitMQ → MQTT.
Each runs end to end and is compared message by message."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs.models import ExecutionStatus, Job
from tests.messagingjobs import RunningConsumer, broker_place
from tests.syncdb import execute, messages, run, writer_execution

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = json.loads(
    (
        Path(__file__).resolve().parent / "fixtures" / "messaging" / "vendor_direct_jobs.json"
    ).read_text()
)
FILMS = [
    (1, "ACADEMY DINOSAUR", 'A "Epic" Drama', 2006, 1, None, 6, "0.99", 86, "20.99", "PG",
     "Deleted Scenes,Behind the Scenes", dt.datetime(2006, 2, 15, 5, 3, 42)),
    (2, "ACE GOLDFINGER", "A Astounding Epistle\nof a Database", 2006, 1, 2, 3, "4.99", 48,
     "12.99", "G", "Trailers", dt.datetime(2006, 2, 15, 5, 3, 42)),
]  # fmt: skip
COLUMNS = [
    "film_id", "title", "description", "release_year", "language_id", "original_language_id",
    "rental_duration", "rental_rate", "length", "replacement_cost", "rating",
    "special_features", "last_update",
]  # fmt: skip


def post(datazen: APIClient, sample: dict[str, Any]) -> Job:
    body = {"JobReader": sample["JobReader"], "JobWriter": sample["JobWriter"]}
    response = datazen.post("/job", body, format="json")
    assert response.status_code == 200, response.content
    return Job.objects.get(job_key=sample["JobKey"], kind="reader")


def test_mysql_reader_to_event_hub_sample_runs_against_rabbitmq(
    datazen: APIClient, mariadb_url: str
) -> None:
    with broker_place("rabbitmq") as place:
        # given the sample's Film table in MariaDB and the sample job, Event Hub → RabbitMQ
        execute(
            mariadb_url,
            "CREATE TABLE Film (film_id INT PRIMARY KEY, title VARCHAR(255), description TEXT, "
            "release_year INT, language_id INT, original_language_id INT, rental_duration INT, "
            "rental_rate DECIMAL(4,2), length INT, replacement_cost DECIMAL(5,2), "
            "rating VARCHAR(10), special_features VARCHAR(100), last_update DATETIME)",
        )
        execute(
            mariadb_url,
            "INSERT INTO Film VALUES (" + ", ".join(f":{c}" for c in COLUMNS) + ")",
            params=[dict(zip(COLUMNS, film, strict=True)) for film in FILMS],
        )
        sample = copy.deepcopy(SAMPLES["FILMS-AzEventHub"])
        sample["JobReader"]["ConnectionString"] = mariadb_url
        sample["JobWriter"]["ConnectionString"] = place.store()
        for name in ("MessagingUpsertSettings", "MessagingDeleteSettings"):
            settings = sample["JobWriter"]["Options"][name]
            settings.update(SystemType="rabbitmq", SystemTypeDisplay="RabbitMQ")
            settings.pop("EventHubName")
        job = post(datazen, sample)
        # when
        execution = run(job)
        # then each row is one message, the sample's UpsertScript filled in
        assert execution.status == ExecutionStatus.SUCCEEDED, (
            execution.error_message,
            messages(writer_execution(execution)),
        )
        got = sorted(
            (json.loads(m.body) for m in place.read_all(len(FILMS))), key=lambda d: d["film_id"]
        )
        expected = []
        for film in FILMS:
            row = dict(zip(COLUMNS, film, strict=True))
            row["rental_rate"] = float(decimal.Decimal(row["rental_rate"]))
            row["replacement_cost"] = float(decimal.Decimal(row["replacement_cost"]))
            row["last_update"] = row["last_update"].isoformat()
            expected.append(row)
        assert got == expected


def test_rabbitmq_consumer_to_kafka_sample_runs_against_mqtt(datazen: APIClient) -> None:
    with broker_place("rabbitmq") as source, broker_place("mqtt") as target:
        # given the sample job: its consumer on our RabbitMQ queue, its producer on MQTT
        sample = copy.deepcopy(SAMPLES["Rabbit-Kafka"])
        reader, writer = sample["JobReader"], sample["JobWriter"]
        reader["ConnectionString"] = source.store()
        reader["JsonData"]["MessagingOptions"]["QueueNameOverride"] = source.name
        writer["ConnectionString"] = target.store()
        writer["Options"]["MessagingUpsertSettings"].update(
            SystemType="mqtt", SystemTypeDisplay="MQTT"
        )
        job = post(datazen, sample)
        target.subscribe()
        films = [
            json.dumps({"film_id": n, "title": f"FILM {n}", "rating": "PG"}, indent=1).encode()
            for n in range(1, 6)
        ]
        other = b'{"actor_id": 7, "name": "not a film"}'
        source.publish_raw([*films[:3], other, *films[3:]], [f"f{n}" for n in range(6)])
        # when the consumer runs
        consumer = RunningConsumer(job)
        got = target.read_all(len(films), timeout=60)
        execution = consumer.stop()
        # then the film messages are forwarded as they came (IsPassthroughMessaging), the
        # pipeline's DataFilter having dropped the other one
        assert sorted(m.body for m in got) == sorted(films)
        assert execution.records_direct_written == len(films)

"""Message consumers against the real brokers, run as daemons by the real runner: messages →
change logs → a database (direct job), compared message by message; poison messages
dead-lettered while the rest flow on; redelivered ids applied once; a broker that cannot be
reached shows as a consumer daemon error."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from jobs.models import ExecutionStatus
from jobs.sync import consume
from jobs.sync.spec import ReaderSpec, SpecError
from tests.messagingjobs import (
    SERVICES,
    BrokerPlace,
    RunningConsumer,
    broker_place,
    consumer_job,
    finished,
    store_connection,
    wait_for,
)
from tests.syncdb import messages, rows

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = {"id": 1, "name": "sample", "price": 1.5, "active": True}


def film(n: int) -> dict[str, Any]:
    return {"id": n, "name": f'film {n} "quoted" & <x>', "price": n + 0.25, "active": n % 2 == 0}


@pytest.fixture(params=SERVICES)
def place(request: Any) -> Iterator[BrokerPlace]:
    with broker_place(request.param) as place:
        yield place


def json_options(place: BrokerPlace, **more: Any) -> dict[str, Any]:
    return {
        "MessageProcessing": 1,
        "MessagingContentColumn": "",
        "MessagingFlushTTL": 0.3,
        "MessagingBatchEnabled": True,
        "MessagingBatchCount": 7,
        "MessagingSampleMsg": json.dumps(SAMPLE),
        # MQTT: the session the test subscribed before publishing is the consumer's.
        "MessagingGroupName": place.reader_id if place.service == "mqtt" else None,
        **more,
    }


def count(url: str, table: str = "messages") -> int:
    try:
        return len(rows(url, table, order_by="1"))
    except Exception:
        return 0


def test_consumer_to_database_applies_every_message_once(
    place: BrokerPlace, sqlite_url: str
) -> None:
    # given 25 messages waiting, two of them sent twice (a publisher's retry)
    films = [film(n) for n in range(1, 26)]
    bodies = [json.dumps(f).encode() for f in films]
    ids = [f"m{n}" for n in range(1, 26)]
    place.publish_raw(bodies + bodies[:2], ids + ids[:2])
    job = consumer_job(place.store(), sqlite_url, options=json_options(place), keys="id")
    # when
    consumer = RunningConsumer(job)
    wait_for(lambda: count(sqlite_url) >= len(films), 60, "the rows in the target")
    execution = consumer.stop()
    # then message by message, each once
    assert execution.status == ExecutionStatus.CANCELLED, execution.error_message
    got = rows(sqlite_url, "messages")
    assert [tuple(r) for r in got] == [(f["id"], f["name"], f["price"], f["active"]) for f in films]
    assert execution.records_available >= len(films)
    assert execution.records_direct_written == len(films)
    assert not execution.is_consumer_daemon_error
    # and nothing is left unacknowledged on the broker
    assert place.read_all(0, timeout=1) == []


def test_poison_message_is_dead_lettered_while_the_rest_flow_on(sqlite_url: str) -> None:
    with broker_place("rabbitmq") as place:
        # given
        bodies = [json.dumps(film(1)).encode(), b"{not json", json.dumps(film(2)).encode()]
        place.publish_raw(bodies, ["a", "poison", "b"])
        job = consumer_job(place.store(), sqlite_url, options=json_options(place), keys="id")
        # when
        consumer = RunningConsumer(job)
        wait_for(lambda: count(sqlite_url) >= 2, 60, "the good rows")
        execution = consumer.stop()
        # then
        assert [r[0] for r in rows(sqlite_url, "messages")] == [1, 2]
        dead = consume.dead_letter_path(job.job_key).read_text().splitlines()
        assert len(dead) == 1
        entry = json.loads(dead[0])
        assert entry["message_id"] == "poison"
        assert entry["content"] == "{not json"
        assert "not JSON" in entry["reason"]
        assert any("dead-lettered" in m for m in messages(execution))
        assert place.read_all(0, timeout=1) == []


def test_dead_letters_corrected_and_replayed_reach_the_consumer_again(
    place: BrokerPlace, sqlite_url: str
) -> None:
    # given a consumer that dead-lettered a message it could not read
    place.publish_raw([json.dumps(film(1)).encode(), b"{not json"], ["r1", "r2"])
    job = consumer_job(place.store(), sqlite_url, options=json_options(place), keys="id")
    dead = consume.dead_letter_path(job.job_key)
    consumer = RunningConsumer(job)
    try:
        wait_for(lambda: count(sqlite_url) >= 1 and dead.exists(), 60, "a row and a dead letter")
        (entry,) = [json.loads(line) for line in dead.read_text().splitlines()]
        # when the operator corrects its content and replays the file
        entry["content"] = json.dumps(film(2))
        dead.write_text(json.dumps(entry) + "\n")
        said = io.StringIO()
        call_command("replaydeadletters", str(dead), stdout=said)
        wait_for(lambda: count(sqlite_url) >= 2, 60, "the replayed row")
    finally:
        execution = consumer.stop()
    # then the consumer took it like any message, and the file is empty
    assert [r[0] for r in rows(sqlite_url, "messages")] == [1, 2]
    assert "1 message(s) published, 0 still failing." in said.getvalue()
    assert dead.read_text() == ""
    assert execution.records_direct_written == 2
    assert place.read_all(0, timeout=1) == []


def test_dead_letters_of_an_unknown_job_stay_in_the_file_with_the_reason(
    settings: Any,
) -> None:
    # given a dead-letter file whose job no longer exists
    dead = Path(settings.DATA_DIR) / "deadletter" / f"gone{consume.DEAD_LETTER_SUFFIX}"
    dead.parent.mkdir(parents=True, exist_ok=True)
    dead.write_text(json.dumps({"job": "gone", "message_id": "m1", "content": "{}"}) + "\n")
    # when
    with pytest.raises(CommandError, match="1 still failing: kept in the file"):
        call_command("replaydeadletters", f"deadletter/gone{consume.DEAD_LETTER_SUFFIX}")
    # then
    (entry,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert entry["replay_error"] == "No job reader has the key 'gone'."
    assert entry["content"] == "{}"


def test_replay_refuses_a_file_outside_the_data_directory(tmp_path: Path) -> None:
    outside = tmp_path / f"x{consume.DEAD_LETTER_SUFFIX}"
    outside.write_text("")
    with pytest.raises(CommandError, match="is not under the data directory"):
        call_command("replaydeadletters", str(outside))


def test_raw_messages_keep_their_content_and_metadata(sqlite_url: str) -> None:
    with broker_place("redis") as place:
        # given
        place.publish_raw([b"<film id='1'/>", b"plain text"], ["x1", "x2"])
        options = {
            "MessageProcessing": 0,
            "MessagingContentColumn": "_raw",
            "MessagingFlushTTL": 0.3,
            "IncludeMetadata": True,
            "MetadataFields": "_message_id",
        }
        job = consumer_job(place.store(), sqlite_url, options=options)
        # when
        consumer = RunningConsumer(job)
        wait_for(lambda: count(sqlite_url) >= 2, 60, "the raw rows")
        consumer.stop()
        # then
        assert rows(sqlite_url, "messages", order_by="_message_id") == [
            ("<film id='1'/>", "x1"),
            ("plain text", "x2"),
        ]


def test_unreachable_broker_fails_the_consumer_as_a_daemon_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a RabbitMQ connection to a port nothing listens on
    monkeypatch.setattr(consume, "RECONNECTS", 1)
    monkeypatch.setattr(consume, "RECONNECT_FIRST_WAIT", 0.01)
    key = store_connection(
        "messaging_nowhere", {"service": "rabbitmq", "host": "127.0.0.1", "port": 9, "queue": "q"}
    )
    job = consumer_job(key, sqlite_url, options={"MessageProcessing": 0})
    # when
    consumer = RunningConsumer(job)
    wait_for(lambda: finished(consumer.execution), 60, "the consumer to fail")
    # then
    execution = consumer.execution
    assert execution.status == ExecutionStatus.FAILED
    assert execution.is_consumer_daemon_error
    assert "RabbitMQ 127.0.0.1:9" in execution.error_message


def test_consumer_options_are_checked_when_the_job_is_saved() -> None:
    with pytest.raises(SpecError, match="MessagingBatchCount must be between"):
        ReaderSpec.parse(
            {
                "JsonData": {
                    "MessagingOptions": {"MessagingBatchCount": 0, "MessagingBatchEnabled": True}
                }
            }
        )
    with pytest.raises(SpecError, match="MessagingSampleMsg is not JSON"):
        ReaderSpec.parse(
            {"JsonData": {"MessagingOptions": {"MessageProcessing": 1, "MessagingSampleMsg": "{"}}}
        )


def test_xml_messages_become_rows_by_their_root_path(sqlite_url: str) -> None:
    with broker_place("nats") as place:
        # given XML messages, each with two rows under <films>
        xml = "<films><film><id>{a}</id><title>T{a} &amp; co</title></film>" + (
            "<film><id>{b}</id><title>T{b}</title></film></films>"
        )
        place.publish_raw(
            [xml.format(a=1, b=2).encode(), xml.format(a=3, b=4).encode()], ["x1", "x2"]
        )
        options = {
            "MessageProcessing": 2,
            "RootPath": "//film",
            "MessagingFlushTTL": 0.3,
            "MessagingSampleMsg": xml.format(a=0, b=0),
        }
        job = consumer_job(place.store(), sqlite_url, options=options)
        # when
        consumer = RunningConsumer(job)
        wait_for(lambda: count(sqlite_url) >= 4, 60, "the XML rows")
        consumer.stop()
        # then
        assert rows(sqlite_url, "messages", order_by="id") == [
            ("1", "T1 & co"),
            ("2", "T2"),
            ("3", "T3 & co"),
            ("4", "T4"),
        ]

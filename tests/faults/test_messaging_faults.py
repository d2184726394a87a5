"""Messaging under fault: a producer whose RabbitMQ connection drops mid-batch (nothing lost,
nothing doubled once consumed), and a consumer whose worker is SIGKILLed mid-batch in the
fleet (every published message in the target exactly once after the takeover)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import pika
import psycopg
import pytest

from jobs.models import ExecutionStatus
from tests import services
from tests.faults.conftest import Fleet, conninfo, start_fleet
from tests.faults.proxy import TcpProxy
from tests.messagingjobs import (
    RunningConsumer,
    broker_place,
    consumer_job,
    store_connection,
    wait_for,
)
from tests.processes import manage
from tests.syncdb import direct_job, execute, messages, rows, run, writer_execution

ROWS = 3_000


def _queue_depth(queue: str) -> int:
    conn = pika.BlockingConnection(
        pika.ConnectionParameters(services.RABBITMQ_HOST, services.RABBITMQ_PORT)
    )
    try:
        return conn.channel().queue_declare(queue, durable=True, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_producer_connection_dropped_mid_batch_loses_and_doubles_nothing(
    sqlite_url: str, tmp_path: Any
) -> None:
    with (
        broker_place("rabbitmq") as place,
        TcpProxy(services.RABBITMQ_HOST, services.RABBITMQ_PORT) as proxy,
    ):
        # given a table and a producer writing to RabbitMQ through a proxy we can cut
        execute(sqlite_url, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        execute(
            sqlite_url,
            "INSERT INTO items VALUES (:id, :name)",
            params=[{"id": n, "name": f"item {n}"} for n in range(1, ROWS + 1)],
        )
        key = store_connection(f"{place.name}_proxy", {**place.value, "port": proxy.port})
        job = direct_job(
            sqlite_url,
            key,
            sql="SELECT id, name FROM items",
            target="",
            keys="id",
            propagate_delete=False,
            writer={"TargetSystem": "MESSAGING"},
            options={"MessagingUpsertSettings": {"TopicName": ""}, "BatchCount": 100},
        )
        # when the connection is cut while the producer is mid-way
        done: list[Any] = []
        thread = threading.Thread(target=lambda: done.append(run(job)), daemon=True)
        thread.start()
        wait_for(lambda: _queue_depth(place.name) >= ROWS // 3, 120, "a third published")
        proxy.cut()
        time.sleep(0.3)
        proxy.restore()
        thread.join(180)
        # then the run finished after its retries…
        execution = done[0]
        assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
        retried = [m for m in messages(writer_execution(execution)) if "again" in m]
        assert retried, "the cut did not land mid-run"
        # …every row is on the broker (copies only of the unconfirmed chunk, same ids)…
        got = place.read_all(ROWS + 200, timeout=10)
        ids = [m.message_id for m in got]
        assert len(set(ids)) == ROWS
        assert len(ids) - ROWS <= 100
        bodies = {json.loads(m.body)["id"] for m in got}
        assert bodies == set(range(1, ROWS + 1))
        # …and a fresh consumer applies each exactly once
        place.publish_raw([m.body for m in got], ids)
        target = f"sqlite:///{tmp_path / 'consumed.sqlite3'}"
        consumer = RunningConsumer(
            consumer_job(
                place.store(),
                target,
                options={
                    "MessageProcessing": 1,
                    "MessagingContentColumn": "",
                    "MessagingBatchEnabled": True,
                    "MessagingBatchCount": 500,
                    "MessagingFlushTTL": 0.5,
                },
                keys="",
            )
        )
        wait_for(lambda: _count(target) >= ROWS, 120, "the consumer applying every row")
        time.sleep(1)
        consumer.stop()
        assert sorted(r[0] for r in rows(target, "messages")) == list(range(1, ROWS + 1))
        print(f"\nproducer cut: {len(ids) - ROWS} copies on the broker, 0 in the target")


def _count(url: str) -> int:
    try:
        return len(rows(url, "messages", order_by="1"))
    except Exception:
        return 0


CONSUMED = 4_000


def _target_counts(target: str) -> tuple[int, int]:
    with psycopg.connect(conninfo(target), autocommit=True) as db:
        row = db.execute("SELECT count(*), count(DISTINCT id) FROM items").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _consumer_run(fleet: Fleet, job: str) -> tuple[str, str, int] | None:
    found = fleet.query(
        "SELECT guid, worker, record_count FROM jobs_execution WHERE job_guid = %s "
        "AND listener_type = 'reader' AND status = 'running'",
        job,
    )
    return found[0] if found else None


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_consumer_worker_killed_mid_batch_applies_every_message_exactly_once(
    fleet: Fleet,
) -> None:
    with broker_place("rabbitmq") as place, services.postgres_database() as target:
        # given messages waiting and a target without keys (a duplicate would be a second row),
        # slow to write so that the kill lands mid-way
        place.publish_raw(
            [json.dumps({"id": n, "name": f"item {n}"}).encode() for n in range(CONSUMED)],
            [f"msg-{n}" for n in range(CONSUMED)],
        )
        with psycopg.connect(conninfo(target), autocommit=True) as db:
            db.execute("CREATE TABLE items (id integer, name text)")
            db.execute(
                "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN IF NEW.id % 100 = 0 THEN PERFORM pg_sleep(0.05); END IF; "
                "RETURN NEW; END $$"
            )
            db.execute(
                "CREATE TRIGGER slow BEFORE INSERT ON items "
                "FOR EACH ROW EXECUTE FUNCTION slow_row()"
            )
        start_fleet(fleet, connections={"dst": target})
        manage(
            fleet.env, "setconnection", "mq", "--system", "RabbitMQ", "--type", "Messaging",
            "--value", json.dumps(place.value),
        )  # fmt: skip
        body = {
            "JobReader": {
                "JobKey": "consumer",
                "Path": "faults/consumer",
                "ConnectionString": "mq",
                "Active": True,
                "JsonData": {
                    "DirectWriter": "__consumer",
                    "IsQueuingSource": True,
                    "MessagingOptions": {
                        "MessageProcessing": 1,
                        "MessagingContentColumn": "",
                        "MessagingBatchEnabled": True,
                        "MessagingBatchCount": 200,
                        "MessagingFlushTTL": 0.5,
                    },
                },
            },
            "JobWriter": {
                "JobKey": "__consumer",
                "ConnectionString": "dst",
                "TargetObject": "items",
                "Active": True,
            },
        }
        response = fleet.post("/job", json=body)
        assert response.status_code == 200, response.text
        job = next(
            r["Guid"] for r in fleet.get("/jobs/summary").json() if r["JobKey"] == "consumer"
        )
        # when the consumer runs and has logged part of the messages, its worker is killed
        assert fleet.post(f"/job/start?guid={job}").text == "OK"
        guid, worker, _ = fleet.wait_for(
            "the consumer logging messages",
            lambda: (run := _consumer_run(fleet, job)) and run[2] > 0 and run,
            timeout=120,
        )
        applied_before = _target_counts(target)[0]
        os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)
        # then another worker takes it over and every message lands exactly once
        fleet.wait_for(
            "the consumer taken over",
            lambda: (run := _consumer_run(fleet, job)) and run[1] != worker,
            timeout=60,
        )
        fleet.wait_for(
            "every message applied",
            lambda: _target_counts(target)[0] >= CONSUMED,
            timeout=240,
        )
        time.sleep(2)  # anything applied twice would show now
        assert _target_counts(target) == (CONSUMED, CONSUMED)
        assert fleet.post(f"/job/stop?guid={job}").status_code == 200
        fleet.wait_for(
            "the consumer stopped",
            lambda: fleet.query(
                "SELECT status FROM jobs_execution WHERE guid = %s AND listener_type = 'reader' "
                "AND finished_at IS NOT NULL",
                guid,
            ),
            timeout=60,
        )
        assert _queue_depth(place.name) == 0
        print(f"\nconsumer SIGKILL with {applied_before} rows applied: {CONSUMED} once each")

"""Messaging under fault: a producer whose RabbitMQ connection drops mid-batch (nothing lost,
nothing doubled once consumed), and a consumer whose worker is SIGKILLed mid-batch in the
fleet (every published message in the target exactly once after the takeover)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pika
import pytest

from jobs.models import ExecutionStatus
from tests import services
from tests.faults.proxy import TcpProxy
from tests.messagingjobs import (
    RunningConsumer,
    broker_place,
    consumer_job,
    store_connection,
    wait_for,
)
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

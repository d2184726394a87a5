"""Helpers for messaging tests: a stored connection per broker on names of its own, a reader
of what a broker holds, consumer jobs run as daemons on a thread, and clean-up."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import nats
import paho.mqtt.client as mqtt
import pika
import redis
from django.db import connection

from jobs import runner
from jobs import services as job_services
from jobs.models import ConnectionString, ConnectionType, Execution, ExecutionStatus, Job
from jobs.systems.messaging import broker_for
from jobs.systems.messaging.brokers import Message, Outgoing
from jobs.systems.messaging.connection import parse_connection
from tests import services
from tests.syncdb import direct_job

SERVICES = ("rabbitmq", "redis", "nats", "mqtt")


def store_connection(key: str, value: dict[str, Any]) -> str:
    ConnectionString.objects.update_or_create(
        key=key,
        defaults={
            "system": value["service"],
            "connection_type": ConnectionType.MESSAGING,
            "encrypted_value": "",
        },
    )
    stored = ConnectionString.objects.get(key=key)
    stored.value = json.dumps(value)
    stored.save()
    return key


class BrokerPlace:
    """A queue/topic/subject/stream named for one test, on one broker, removed afterwards."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.name = services.unique_name("messaging")
        self.value = services.messaging_connection_value(service, self.name)
        self.key = f"{self.name}_conn"
        self.reader_id = f"{self.name}_check"

    def store(self) -> str:
        return store_connection(self.key, self.value)

    def settings(self) -> Any:
        return parse_connection(json.dumps(self.value))

    def subscribe(self) -> None:
        """MQTT keeps messages only for sessions that subscribed before they were published."""
        if self.service == "mqtt":
            broker = broker_for(
                self.settings(),
                group=self.reader_id if self.service == "mqtt" else "",
                member=self.reader_id,
            )
            broker.receive(1, 0.2)
            broker.close()

    def read_all(self, expected: int, timeout: float = 20.0) -> list[Message]:
        """Consume (and acknowledge) what the place holds: `expected` messages or timeout."""
        broker = broker_for(
            self.settings(),
            group=self.reader_id if self.service == "mqtt" else "",
            member=self.reader_id,
        )
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        try:
            while len(got) < expected and time.monotonic() < deadline:
                batch = broker.receive(expected - len(got), 0.5)
                broker.ack(batch)
                got.extend(batch)
            extra = broker.receive(100, 0.5)  # nothing more may be there
            broker.ack(extra)
            got.extend(extra)
        finally:
            broker.close()
        return got

    def publish_raw(self, bodies: list[bytes], ids: list[str] | None = None) -> None:
        """Publish with the broker's own client (not the gateway's producer)."""
        self.subscribe()
        broker = broker_for(self.settings())
        try:
            broker.publish(
                [
                    Outgoing(body, (ids[n] if ids else f"raw-{n}"), "")
                    for n, body in enumerate(bodies)
                ]
            )
        finally:
            broker.close()

    def remove(self) -> None:
        try:
            if self.service == "rabbitmq":
                conn = pika.BlockingConnection(
                    pika.ConnectionParameters(services.RABBITMQ_HOST, services.RABBITMQ_PORT)
                )
                conn.channel().queue_delete(self.name)
                conn.close()
            elif self.service == "redis":
                redis.Redis.from_url(self.value["url"]).delete(self.name)
            elif self.service == "nats":

                async def drop() -> None:
                    nc = await nats.connect(self.value["servers"])
                    try:
                        await nc.jetstream().delete_stream(self.name)
                    finally:
                        await nc.close()

                asyncio.run(drop())
            elif self.service == "mqtt":
                for client_id in (self.reader_id, f"gw_{self.name}"):
                    # A clean start with no session expiry ends the stored session.
                    client = mqtt.Client(
                        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
                    )
                    client.connect(services.MQTT_HOST, services.MQTT_PORT, clean_start=True)
                    client.disconnect()
        except Exception:
            pass


@contextmanager
def broker_place(service: str) -> Iterator[BrokerPlace]:
    place = BrokerPlace(service)
    try:
        yield place
    finally:
        place.remove()


def consumer_job(
    connection: str,
    target_url: str,
    *,
    options: dict[str, Any],
    target: str = "messages",
    keys: str = "",
    pipeline: list[dict[str, Any]] | None = None,
    key: str = "",
) -> Job:
    job = direct_job(
        connection,
        target_url,
        sql="",
        target=target,
        keys=keys,
        propagate_delete=False,
        json_data={"IsQueuingSource": True, "MessagingOptions": options},
        reader={"PipelineDef": pipeline or [], **({"JobKey": key} if key else {})},
    )
    return job


class RunningConsumer:
    """A consumer's execution run by the real runner on a thread, until stopped."""

    def __init__(self, job: Job) -> None:
        self.job = job
        created = job_services.new_execution(job)
        claimed = runner.claim(created.pk)
        assert claimed is not None
        self.execution = claimed
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            runner.run_claimed(self.execution)
        finally:
            connection.close()

    def stop(self, timeout: float = 30.0) -> Execution:
        job_services.stop_job(self.job)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the consumer did not stop"
        self.execution.refresh_from_db()
        return self.execution


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or check}")


def finished(execution: Execution) -> bool:
    execution.refresh_from_db()
    return execution.status != ExecutionStatus.RUNNING

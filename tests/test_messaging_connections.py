"""Messaging connection strings: each service's members, refused typos and values, Kafka and
Event Hub stored but refused at run time, the gateway's own Redis refused."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from jobs import guard
from jobs.models import ConnectionType
from jobs.sync.spec import SpecError, WriterSpec
from jobs.systems import registry
from jobs.systems.base import Connection, UnsupportedSystem
from jobs.systems.messaging import settings_of
from jobs.systems.messaging.connection import MessagingConnectionError, parse_connection


def connection(value: dict[str, object]) -> Connection:
    return Connection("mq", str(value.get("service")), ConnectionType.MESSAGING, json.dumps(value))


def test_each_service_reads_its_members_with_defaults() -> None:
    rabbit = parse_connection('{"service": "rabbitmq", "queue": "orders"}')
    assert (rabbit.host, rabbit.port, rabbit.vhost, rabbit.username) == (
        "127.0.0.1", 5672, "/", "guest",
    )  # fmt: skip
    assert parse_connection('{"service": "mqtt", "topic": "t"}').port == 1883
    nats = parse_connection('{"service": "nats", "servers": "nats://a:4222, nats://b:4222"}')
    assert nats.servers == ["nats://a:4222", "nats://b:4222"]
    assert parse_connection('{"service": "redis", "stream": "s"}').url.startswith("redis://")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"service": "rabbitmq", "queu": "x"}', "member\\(s\\) queu unknown"),
        ('{"service": "sqs"}', "'sqs' is not one of"),
        ('{"service": "mqtt", "qos": 0}', "'qos' 0 is not supported"),
        ('{"service": "nats", "servers": ["http://x"]}', "must be a nats:// or tls:// URL"),
        ('{"service": "redis", "url": "http://x"}', "redis:// or rediss:// URL"),
        ('{"service": "rabbitmq", "port": 70000}', "'port' must be 1-65535"),
        ("amqp://x", "is a JSON object such as"),
    ],
)
def test_bad_connections_are_refused_naming_the_member(value: str, message: str) -> None:
    with pytest.raises(MessagingConnectionError, match=message):
        parse_connection(value)


@pytest.mark.parametrize(("service", "name"), [("kafka", "Kafka"), ("eventhub", "Azure Event Hub")])
def test_kafka_and_event_hub_are_accepted_then_refused_at_run_time(service: str, name: str) -> None:
    parsed = parse_connection(json.dumps({"service": service}))  # stored as the vendor writes it
    assert parsed.display == name
    with pytest.raises(UnsupportedSystem, match=f"{name} is not supported by this gateway"):
        registry.system_for(connection({"service": service})).check(
            connection({"service": service})
        )


@override_settings(CELERY_BROKER_URL="redis://localhost:6379/0")
def test_the_gateways_own_redis_broker_is_refused() -> None:
    with pytest.raises(guard.ConnectionRefused, match="gateway's own CELERY_BROKER_URL"):
        settings_of(connection({"service": "redis", "url": "redis://127.0.0.1:6379/0"}))
    assert settings_of(connection({"service": "redis", "url": "redis://127.0.0.1:6379/5"}))


def test_producer_settings_are_checked_when_the_job_is_saved() -> None:
    with pytest.raises(SpecError, match="SystemType 'sqs' is not one of"):
        WriterSpec.parse(
            {
                "TargetSystem": "MESSAGING",
                "Options": {"MessagingUpsertSettings": {"SystemType": "sqs"}},
            }
        )
    parsed = WriterSpec.parse(
        {"Options": {"MessagingUpsertSettings": {"SystemType": "rabbitmq", "TopicName": "q"}}}
    )
    assert parsed.target_kind == "Messaging"

"""Messaging systems: RabbitMQ, MQTT, NATS JetStream and Redis Streams as sources (consumers,
run as daemons by jobs.sync.consume) and targets (producers with broker confirms).

`connection` reads the connection format, `brokers` is what both halves ask of a broker and
`rabbitmq`, `mqtt`, `nats`, `redis_streams` implement it, `consumer` turns messages into rows,
`producer` rows into messages. docs/messaging.md explains them to users.
"""

from __future__ import annotations

import urllib.parse

from django.conf import settings as django_settings

from jobs import guard
from jobs.sync.spec import ReaderSpec, SpecError, WriterSpec
from jobs.systems.base import Connection, UnsupportedSystem
from jobs.systems.messaging.brokers import Broker
from jobs.systems.messaging.connection import MessagingConnectionSettings, parse_connection
from jobs.systems.messaging.consumer import MessagingReader
from jobs.systems.messaging.producer import MessagingWriter
from jobs.systems.messaging.settings import consumer_settings


def _redis_place(url: str) -> tuple[str, int, int]:
    parts = urllib.parse.urlsplit(url)
    path = parts.path.strip("/")
    return parts.hostname or "localhost", parts.port or 6379, int(path) if path.isdigit() else 0


def check_not_own_redis(settings: MessagingConnectionSettings) -> None:
    """A Redis stream connection may not be the gateway's own Celery broker or result backend
    (docs/security.md): a job could read its tasks or write into its queues."""
    host, port, db = _redis_place(settings.url)
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        own = str(getattr(django_settings, name, "") or "")
        if not own.startswith(("redis://", "rediss://")):
            continue
        own_host, own_port, own_db = _redis_place(own)
        if port == own_port and db == own_db and guard.same_host(host, own_host):
            raise guard.ConnectionRefused(
                f"Redis {host}:{port}/{db} is the gateway's own {name}: a messaging connection "
                "must use another Redis database."
            )


def settings_of(connection: Connection) -> MessagingConnectionSettings:
    try:
        settings = parse_connection(connection.value)
        settings.require_runnable()
    except SpecError as exc:
        raise UnsupportedSystem(f"{connection.describe()}: {exc}") from None
    if settings.service == "redis":
        check_not_own_redis(settings)
    return settings


def broker_for(
    settings: MessagingConnectionSettings,
    *,
    destination: str = "",
    group: str = "",
    member: str = "gateway",
) -> Broker:
    """The broker of a connection. `destination` overrides its queue/topic/subject/stream
    (QueueNameOverride); a consumer is found again by `group` (MessagingGroupName), else the
    connection's own group/durable/client id, else `member` (a name made from the job key)."""
    # Each broker's client library is imported with its broker, not with the connector: a
    # process pays only for the brokers it talks to (pika, redis and paho ~12-19 MB each;
    # nats-py about 0.6 s for its asyncio stack).
    if settings.service == "rabbitmq":
        # pika loads with its broker (see above).
        from jobs.systems.messaging.rabbitmq import RabbitMqBroker

        return RabbitMqBroker(settings, queue=destination)
    if settings.service == "redis":
        # The redis client loads with its broker (see above).
        from jobs.systems.messaging.redis_streams import RedisStreamBroker

        return RedisStreamBroker(
            settings, stream=destination, group=group or settings.group, consumer=member
        )
    if settings.service == "nats":
        # nats-py loads with its broker (see above).
        from jobs.systems.messaging.nats import NatsBroker

        return NatsBroker(
            settings, subject=destination, durable=group or settings.durable or member
        )
    if settings.service == "mqtt":
        # paho loads with its broker (see above).
        from jobs.systems.messaging.mqtt import MqttBroker

        return MqttBroker(
            settings, topic=destination, client_id=group or settings.client_id or member
        )
    settings.require_runnable()
    raise UnsupportedSystem(f"No broker for {settings.display}.")


def _member_name(spec: ReaderSpec) -> str:
    """Stable across restarts and workers: a resumed consumer finds its unacknowledged
    messages (Redis pending entries, the NATS durable, the MQTT session) again."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in f"gw_{spec.job_key}")


class MessagingSystem:
    def reader(self, connection: Connection, spec: ReaderSpec) -> MessagingReader:
        where = f"Job reader '{spec.job_key}'"
        if not spec.source_settings:
            raise UnsupportedSystem(
                f"{where} reads a messaging connection but has no JsonData.MessagingOptions."
            )
        options = consumer_settings(spec.source_settings, f"{where}: MessagingOptions")
        settings = settings_of(connection)
        broker = broker_for(
            settings,
            destination=options.queue_override,
            group=options.group_name,
            member=_member_name(spec),
        )
        return MessagingReader(broker, options, spec, where)

    def writer(self, connection: Connection, spec: WriterSpec, writer_guid: str) -> MessagingWriter:
        settings = settings_of(connection)
        return MessagingWriter(lambda: broker_for(settings), settings, spec, writer_guid)

    def check(self, connection: Connection) -> str:
        """Really connect (and declare the queue / stream it names)."""
        settings = settings_of(connection)
        broker = broker_for(settings, member=f"gw_check_{connection.key or 'inline'}")
        try:
            return broker.check()
        finally:
            broker.close()

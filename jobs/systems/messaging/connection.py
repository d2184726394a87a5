"""The messaging connection format: a JSON object stored (encrypted) as the connection's value.

`{"service": "rabbitmq" | "mqtt" | "nats" | "redis" | "kafka" | "eventhub", …}`; docs/connections.md
lists each service's members. Parsed once, here, into a typed `MessagingConnectionSettings`.
Kafka and Azure Event Hub definitions are accepted (the vendor's exports carry them) and refused
when a run uses them (`require_runnable`): no broker of theirs runs here to test against.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from jobs.sync.spec import SpecError, integer

RUNNABLE = ("rabbitmq", "mqtt", "nats", "redis")
NOT_SUPPORTED = {"kafka": "Kafka", "eventhub": "Azure Event Hub"}
_ALIASES = {"azeventhub": "eventhub", "amqp": "rabbitmq", "redisstreams": "redis"}

# Members each service knows; an unknown one is refused (a typo would otherwise pass silently).
_KNOWN: dict[str, set[str]] = {
    "rabbitmq": {
        "host",
        "port",
        "username",
        "password",
        "vhost",
        "queue",
        "exchange",
        "routingKey",
        "heartbeat",
    },
    "mqtt": {"host", "port", "username", "password", "topic", "qos", "clientId"},
    "nats": {"servers", "subject", "stream", "durable", "username", "password", "token"},
    "redis": {"url", "stream", "group", "maxLength"},
    # Accepted as the vendor writes them; never opened (see require_runnable).
    "kafka": {"bootstrapServers", "topic", "group", "username", "password", "saslMechanism"},
    "eventhub": {"connectionString", "eventHubName", "consumerGroup"},
}


class MessagingConnectionError(SpecError):
    """A messaging connection string the gateway cannot use; the message names the member."""


@dataclass(frozen=True)
class MessagingConnectionSettings:
    service: str
    host: str = "127.0.0.1"
    port: int = 0
    username: str = ""
    password: str = ""
    vhost: str = "/"
    queue: str = ""  # RabbitMQ queue
    exchange: str = ""
    routing_key: str = ""
    heartbeat: int = 60
    topic: str = ""  # MQTT topic (Kafka topic, not runnable)
    qos: int = 1
    client_id: str = ""
    servers: list[str] = field(default_factory=list)  # NATS
    subject: str = ""
    stream: str = ""  # NATS JetStream stream / Redis stream key
    durable: str = ""
    token: str = ""
    url: str = ""  # Redis
    group: str = ""
    max_length: int = 0  # Redis XADD MAXLEN ~ (0: unbounded)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return {
            "rabbitmq": "RabbitMQ",
            "mqtt": "MQTT",
            "nats": "NATS",
            "redis": "Redis Streams",
            **NOT_SUPPORTED,
        }[self.service]

    def describe(self) -> str:
        """The non-secret part, for lists and logs."""
        if self.service == "rabbitmq":
            return f"amqp://{self.host}:{self.port}{self.vhost} queue {self.queue or '-'}"
        if self.service == "mqtt":
            return f"mqtt://{self.host}:{self.port} topic {self.topic or '-'}"
        if self.service == "nats":
            return f"{','.join(self.servers)} subject {self.subject or '-'}"
        if self.service == "redis":
            parts = urllib.parse.urlsplit(self.url)
            return f"redis://{parts.hostname}:{parts.port or 6379}{parts.path} stream {self.stream}"
        return self.display

    def require_runnable(self) -> None:
        """Kafka and Event Hub are definitions only: a run using them fails naming the system."""
        if self.service in NOT_SUPPORTED:
            raise MessagingConnectionError(
                f"{NOT_SUPPORTED[self.service]} is not supported by this gateway: its connection "
                "is accepted and stored, but there is no broker of its kind here to consume from "
                f"or publish to. Supported: {', '.join(RUNNABLE)} (docs/messaging.md)."
            )


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise MessagingConnectionError(f"Messaging connection member '{name}' must be a string.")
    return str(value).strip()


def _port(data: dict[str, Any], default: int) -> int:
    port = integer(data.get("port"), "Messaging connection member 'port'", default=default)
    if not 0 < port < 65536:
        raise MessagingConnectionError("Messaging connection member 'port' must be 1-65535.")
    return port


def parse_connection(value: str) -> MessagingConnectionSettings:
    """The stored value → settings; raises MessagingConnectionError naming what is wrong."""
    try:
        data = json.loads((value or "").strip())
    except json.JSONDecodeError as exc:
        raise MessagingConnectionError(
            "A messaging connection string is a JSON object such as "
            '{"service": "rabbitmq", "host": "127.0.0.1", "queue": "orders"} '
            f"(line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    if not isinstance(data, dict):
        raise MessagingConnectionError("A messaging connection string is a JSON object.")
    service = _string(data, "service").lower().replace(" ", "").replace("_", "")
    service = _ALIASES.get(service, service)
    if service not in _KNOWN:
        raise MessagingConnectionError(
            f"Messaging connection 'service' {service or '(missing)'!r} is not one of "
            f"{', '.join(_KNOWN)}."
        )
    unknown = sorted(set(data) - _KNOWN[service] - {"service"})
    if unknown:
        raise MessagingConnectionError(
            f"Messaging connection ({service}) member(s) {', '.join(unknown)} unknown "
            f"(known: {', '.join(sorted(_KNOWN[service]))})."
        )
    if service == "rabbitmq":
        return MessagingConnectionSettings(
            service,
            host=_string(data, "host") or "127.0.0.1",
            port=_port(data, 5672),
            username=_string(data, "username") or "guest",
            password=_string(data, "password") or "guest",
            vhost=_string(data, "vhost") or "/",
            queue=_string(data, "queue"),
            exchange=_string(data, "exchange"),
            routing_key=_string(data, "routingKey"),
            heartbeat=integer(data.get("heartbeat"), "'heartbeat'", default=60),
            raw=data,
        )
    if service == "mqtt":
        qos = integer(data.get("qos"), "Messaging connection member 'qos'", default=1)
        if qos != 1:
            # QoS 0 loses messages and QoS 2 is not needed with deduplication by message id:
            # the delivery promise (docs/messaging.md) is made on QoS 1.
            raise MessagingConnectionError(
                f"MQTT connection 'qos' {qos} is not supported: the gateway publishes and "
                "subscribes with QoS 1 (at least once, acknowledged)."
            )
        return MessagingConnectionSettings(
            service,
            host=_string(data, "host") or "127.0.0.1",
            port=_port(data, 1883),
            username=_string(data, "username"),
            password=_string(data, "password"),
            topic=_string(data, "topic"),
            qos=qos,
            client_id=_string(data, "clientId"),
            raw=data,
        )
    if service == "nats":
        servers = data.get("servers") or "nats://127.0.0.1:4222"
        if isinstance(servers, str):
            servers = [part.strip() for part in servers.split(",") if part.strip()]
        if not isinstance(servers, list) or not all(isinstance(s, str) for s in servers):
            raise MessagingConnectionError("NATS connection 'servers' must be a list of URLs.")
        for server in servers:
            if urllib.parse.urlsplit(server).scheme not in ("nats", "tls"):
                raise MessagingConnectionError(
                    f"NATS connection server {server!r} must be a nats:// or tls:// URL."
                )
        return MessagingConnectionSettings(
            service,
            servers=servers,
            subject=_string(data, "subject"),
            stream=_string(data, "stream"),
            durable=_string(data, "durable"),
            username=_string(data, "username"),
            password=_string(data, "password"),
            token=_string(data, "token"),
            raw=data,
        )
    if service == "redis":
        url = _string(data, "url") or "redis://127.0.0.1:6379/0"
        if urllib.parse.urlsplit(url).scheme not in ("redis", "rediss"):
            raise MessagingConnectionError(
                f"Redis connection 'url' must be a redis:// or rediss:// URL, not {url!r}."
            )
        return MessagingConnectionSettings(
            service,
            url=url,
            stream=_string(data, "stream"),
            group=_string(data, "group"),
            max_length=integer(data.get("maxLength"), "'maxLength'", default=0),
            raw=data,
        )
    return MessagingConnectionSettings(service, raw=data)

"""What the consumer and the producer ask of a broker; one class per service implements it.

`publish` returns only once the broker confirmed every message (RabbitMQ publisher confirms,
MQTT PUBACK at QoS 1, JetStream PubAck, the Redis reply to XADD) and raises otherwise;
`receive` hands over messages that stay unacknowledged until `ack` — which the consumer calls
only once their change log is durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class BrokerError(ConnectionError):
    """The broker refused, dropped the connection or did not confirm; the message says which."""


@dataclass
class Outgoing:
    body: bytes
    message_id: str  # deterministic (writer, change log, row): a retry sends the same id
    destination: str  # queue / routing key, MQTT topic, NATS subject, Redis stream
    key: str = ""  # FieldKey values joined (RabbitMQ: routing key when no destination)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Message:
    body: bytes
    message_id: str  # '' when the broker and the publisher gave none (no deduplication)
    subject: str = ""
    timestamp: str = ""
    redelivered: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    handle: Any = None  # what the broker needs to acknowledge it


class Broker(Protocol):
    def publish(self, messages: list[Outgoing]) -> None:
        """Send and wait for the broker's confirmation of every message, or raise BrokerError."""
        ...

    def receive(self, max_count: int, timeout: float) -> list[Message]:
        """Up to `max_count` messages, waiting at most `timeout` seconds for the first ones."""
        ...

    def ack(self, messages: list[Message]) -> None:
        """Acknowledge `messages` (all received, in order): the broker forgets them."""
        ...

    def check(self) -> str:
        """Really connect; a short description."""
        ...

    def close(self) -> None: ...


def header_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)

"""RabbitMQ (AMQP 0-9-1) through pika: publisher confirms out, manual acknowledgements in."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pika
import pika.exceptions
import pika.spec

from jobs.systems.base import UnsupportedSystem
from jobs.systems.messaging.brokers import BrokerError, Message, Outgoing, header_text
from jobs.systems.messaging.connection import MessagingConnectionSettings

CONFIRM_TIMEOUT = 30.0  # seconds the broker has to confirm a chunk


class RabbitMqBroker:
    def __init__(self, settings: MessagingConnectionSettings, *, queue: str = "") -> None:
        self.settings = settings
        self.queue = queue or settings.queue
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._consuming = False
        self._buffer: list[Message] = []
        self._confirming = False
        self._declared: set[str] = set()

    def _open(self) -> Any:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        s = self.settings
        parameters = pika.ConnectionParameters(
            host=s.host,
            port=s.port,
            virtual_host=s.vhost,
            credentials=pika.PlainCredentials(s.username, s.password),
            heartbeat=s.heartbeat,
            blocked_connection_timeout=30,
            connection_attempts=1,
            socket_timeout=10,
        )
        try:
            self._connection = pika.BlockingConnection(parameters)
            self._channel = self._connection.channel()
        except pika.exceptions.AMQPError as exc:
            raise BrokerError(f"RabbitMQ {s.host}:{s.port}: {exc!r}") from exc
        self._consuming = False
        self._confirming = False
        self._declared = set()
        return self._channel

    def _declare(self, channel: Any, queue: str) -> None:
        # Durable queue, bound to the exchange when one is named: messages survive a restart.
        channel.queue_declare(queue=queue, durable=True)
        if self.settings.exchange:
            channel.queue_bind(
                queue=queue,
                exchange=self.settings.exchange,
                routing_key=self.settings.routing_key or queue,
            )

    # -- producer ----------------------------------------------------------------------------
    def _enable_confirms(self, channel: Any) -> None:
        """Confirm mode on the channel's own (asynchronous) implementation: pika's blocking
        publish waits one round trip per message (about 100 a second here); this publishes a
        whole chunk, then waits until the broker has confirmed every delivery tag of it."""
        impl = channel._impl  # pika's documented blocking adapter wraps this Channel
        selected: list[bool] = []
        impl.confirm_delivery(ack_nack_callback=self._on_confirm, callback=selected.append)
        impl.add_on_return_callback(self._on_return)
        assert self._connection is not None
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while not selected and time.monotonic() < deadline:
            self._connection.process_data_events(time_limit=0.1)
        if not selected:
            raise BrokerError("RabbitMQ did not answer confirm.select.")
        self._next_tag = 1
        self._outstanding: set[int] = set()
        self._refused: list[str] = []
        self._confirming = True

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tags = (
            {t for t in self._outstanding if t <= method.delivery_tag}
            if method.multiple
            else {method.delivery_tag}
        )
        self._outstanding -= tags
        if isinstance(method, pika.spec.Basic.Nack):
            self._refused.append(f"nack for {len(tags)} message(s)")

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._refused.append(
            f"message {properties.message_id} returned unroutable ({method.reply_text})"
        )

    def publish(self, messages: list[Outgoing]) -> None:
        try:
            channel = self._open()
            if not self._confirming:
                self._enable_confirms(channel)
            impl = channel._impl
            for message in messages:
                exchange = self.settings.exchange
                routing_key = (
                    message.destination or self.settings.routing_key or self.settings.queue
                )
                if not exchange and not routing_key:
                    raise UnsupportedSystem(
                        "RabbitMQ: no queue to publish to (connection 'queue'/'routingKey' or "
                        "MessagingUpsertSettings.TopicName)."
                    )
                if not exchange and routing_key not in self._declared:
                    # The default exchange routes to a queue by name: make sure it is there
                    # (durable), or mandatory publishing returns every message unroutable.
                    channel.queue_declare(queue=routing_key, durable=True)
                    self._declared.add(routing_key)
                impl.basic_publish(
                    exchange=exchange,
                    routing_key=routing_key,
                    body=message.body,
                    properties=pika.BasicProperties(
                        message_id=message.message_id,
                        delivery_mode=pika.DeliveryMode.Persistent,
                        headers={**message.headers, "message_key": message.key}
                        if message.key
                        else (message.headers or None),
                        content_type="application/octet-stream",
                    ),
                    mandatory=True,
                )
                self._outstanding.add(self._next_tag)
                self._next_tag += 1
            assert self._connection is not None
            deadline = time.monotonic() + CONFIRM_TIMEOUT
            while self._outstanding and time.monotonic() < deadline:
                self._connection.process_data_events(time_limit=0.05)
        except BrokerError:
            raise
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._forget()
            raise BrokerError(f"RabbitMQ connection lost while publishing: {exc!r}") from exc
        if self._outstanding:
            count = len(self._outstanding)
            self._forget()
            raise BrokerError(f"RabbitMQ did not confirm {count} message(s) in time.")
        if self._refused:
            refused, self._refused = self._refused, []
            raise BrokerError(f"RabbitMQ refused messages: {'; '.join(refused[:3])}")

    # -- consumer ----------------------------------------------------------------------------
    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        stamp = properties.timestamp
        self._buffer.append(
            Message(
                body=body,
                message_id=properties.message_id or "",
                subject=method.routing_key,
                timestamp=dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat() if stamp else "",
                redelivered=bool(method.redelivered),
                headers={k: header_text(v) for k, v in (properties.headers or {}).items()},
                handle=method.delivery_tag,
            )
        )

    def receive(self, max_count: int, timeout: float) -> list[Message]:
        if not self.queue:
            raise UnsupportedSystem("RabbitMQ: the consumer has no queue (connection 'queue').")
        try:
            channel = self._open()
            if not self._consuming:
                self._declare(channel, self.queue)
                # Two batches in flight: the next one arrives while this one is made durable
                # (none is acknowledged before that); the broker keeps the rest.
                channel.basic_qos(prefetch_count=max(2 * max_count, 1))
                channel.basic_consume(self.queue, self._on_message, auto_ack=False)
                self._consuming = True
            assert self._connection is not None
            if len(self._buffer) < max_count:
                self._connection.process_data_events(time_limit=0)
            deadline = time.monotonic() + timeout
            while len(self._buffer) < max_count and (left := deadline - time.monotonic()) > 0:
                self._connection.process_data_events(time_limit=min(left, 0.2))
        except BrokerError:
            raise
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._forget()
            raise BrokerError(f"RabbitMQ connection lost while consuming: {exc!r}") from exc
        taken, self._buffer = self._buffer[:max_count], self._buffer[max_count:]
        return taken

    def ack(self, messages: list[Message]) -> None:
        if not messages:
            return
        try:
            # Delivery tags grow within a channel; one multiple-ack covers the whole batch.
            self._channel.basic_ack(delivery_tag=max(m.handle for m in messages), multiple=True)
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._forget()
            raise BrokerError(
                f"RabbitMQ connection lost before the acknowledgement: {exc!r} (the messages "
                "come again and are recognised by their id)"
            ) from exc

    def check(self) -> str:
        channel = self._open()
        if self.queue:
            frame = channel.queue_declare(queue=self.queue, durable=True, passive=False)
            return f"RabbitMQ queue {self.queue}: {frame.method.message_count} message(s) waiting"
        return f"RabbitMQ {self.settings.host}:{self.settings.port} reachable"

    def _forget(self) -> None:
        self._buffer.clear()  # unacknowledged: the broker delivers them again
        try:
            if self._connection is not None and self._connection.is_open:
                self._connection.close()
        except Exception:
            pass
        self._connection = None
        self._channel = None
        self._consuming = False

    def close(self) -> None:
        self._forget()

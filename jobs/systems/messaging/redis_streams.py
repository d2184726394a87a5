"""Redis Streams through redis-py: XADD out (the reply is the confirmation), consumer groups in.

A consumer reads its own pending entries first (delivered before a crash, never acknowledged),
then new ones; XACK only once they are durable in a change log.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import redis
import redis.exceptions

from jobs.systems.base import UnsupportedSystem
from jobs.systems.messaging.brokers import BrokerError, Message, Outgoing
from jobs.systems.messaging.connection import MessagingConnectionSettings


class RedisStreamBroker:
    def __init__(
        self,
        settings: MessagingConnectionSettings,
        *,
        stream: str = "",
        group: str = "",
        consumer: str = "gateway",
    ) -> None:
        self.settings = settings
        self.stream = stream or settings.stream
        self.group = group or "gateway"
        self.consumer = consumer
        self._client: redis.Redis | None = None
        self._grouped = False
        self._pending_done = False

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.settings.url, socket_timeout=30, socket_connect_timeout=10
            )
        return self._client

    def publish(self, messages: list[Outgoing]) -> None:
        try:
            pipe = self._redis().pipeline(transaction=False)
            for message in messages:
                stream = message.destination or self.stream
                if not stream:
                    raise UnsupportedSystem("Redis: no stream to publish to (connection 'stream').")
                fields: dict[Any, Any] = {"body": message.body, "message_id": message.message_id}
                if message.headers:
                    fields["headers"] = json.dumps(message.headers)
                if message.key:
                    fields["key"] = message.key
                pipe.xadd(
                    stream,
                    fields,
                    maxlen=self.settings.max_length or None,
                    approximate=True,
                )
            pipe.execute()
        except redis.exceptions.RedisError as exc:
            self._forget()
            raise BrokerError(f"Redis connection lost while publishing: {exc!r}") from exc

    def _ensure_group(self) -> None:
        if self._grouped:
            return
        try:
            # From the stream's start: a new group consumes what is already there, as a queue.
            self._redis().xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped = True

    def receive(self, max_count: int, timeout: float) -> list[Message]:
        if not self.stream:
            raise UnsupportedSystem("Redis: the consumer has no stream (connection 'stream').")
        try:
            self._ensure_group()
            client = self._redis()
            if not self._pending_done:
                # Entries delivered to this consumer before and never acknowledged come first.
                reply = client.xreadgroup(
                    self.group, self.consumer, {self.stream: "0"}, count=max_count
                )
                entries = _entries(reply)
                if len(entries) < max_count:
                    self._pending_done = True
                if entries:
                    return [self._message(i, f, redelivered=True) for i, f in entries]
            reply = client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=max_count,
                block=max(int(timeout * 1000), 1),
            )
        except redis.exceptions.RedisError as exc:
            self._forget()
            raise BrokerError(f"Redis connection lost while consuming: {exc!r}") from exc
        entries = _entries(reply)
        return [self._message(i, f, redelivered=False) for i, f in entries]

    def _message(
        self, entry_id: bytes, fields: dict[bytes, bytes], *, redelivered: bool
    ) -> Message:
        ident = entry_id.decode()
        headers: dict[str, str] = {}
        if b"headers" in fields:
            try:
                headers = {str(k): str(v) for k, v in json.loads(fields[b"headers"]).items()}
            except (ValueError, AttributeError):
                headers = {}
        if b"body" in fields:
            body = fields[b"body"]
        else:  # written by someone else: the entry's fields are the message
            body = json.dumps(
                {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
            ).encode()
        return Message(
            body=body,
            message_id=(fields.get(b"message_id") or b"").decode() or f"{self.stream}:{ident}",
            subject=self.stream,
            timestamp=dt.datetime.fromtimestamp(
                int(ident.split("-")[0]) / 1000, dt.UTC
            ).isoformat(),
            redelivered=redelivered,
            headers=headers,
            handle=ident,
        )

    def ack(self, messages: list[Message]) -> None:
        if not messages:
            return
        try:
            self._redis().xack(self.stream, self.group, *[m.handle for m in messages])
        except redis.exceptions.RedisError as exc:
            self._forget()
            raise BrokerError(f"Redis connection lost before the acknowledgement: {exc!r}") from exc

    def check(self) -> str:
        try:
            self._redis().ping()
            length = self._redis().xlen(self.stream) if self.stream else 0
        except redis.exceptions.RedisError as exc:
            raise BrokerError(f"Redis {self.settings.describe()}: {exc}") from exc
        return f"Redis stream {self.stream or '-'}: {length} entries"

    def _forget(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._pending_done = False

    def close(self) -> None:
        self._forget()


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREADGROUP's entries for our one stream (RESP2 answers a list, RESP3 a map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        found = next(iter(reply.values()))
        return list(found[0] if found and isinstance(found[0], list) else found)
    return list(reply[0][1])

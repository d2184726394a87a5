"""NATS JetStream through nats-py: publish waits for each PubAck (with `Nats-Msg-Id`, so the
stream itself drops a retried duplicate), a durable pull consumer acknowledges explicitly.

nats-py is asyncio; the connector's interface is synchronous, so each broker runs its own
event loop on a thread and waits for the coroutines it hands to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js import api

from jobs.systems.base import UnsupportedSystem
from jobs.systems.messaging.brokers import BrokerError, Message, Outgoing, header_text
from jobs.systems.messaging.connection import MessagingConnectionSettings

T = TypeVar("T")
_WAIT_SLACK = 15.0  # seconds beyond an operation's own timeout before the thread gives up


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class NatsBroker:
    def __init__(
        self, settings: MessagingConnectionSettings, *, subject: str = "", durable: str = ""
    ) -> None:
        self.settings = settings
        self.subject = subject or settings.subject
        self.stream = settings.stream
        self.durable = durable or "gateway"
        self._loop: _Loop | None = None
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        if self._loop is None:
            self._loop = _Loop()
        try:
            return self._loop.run(coroutine, timeout + _WAIT_SLACK)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            self._forget()
            raise BrokerError(f"NATS {','.join(self.settings.servers)}: {exc!r}") from exc

    async def _connect(self) -> Any:
        if self._nc is None or self._nc.is_closed:
            s = self.settings
            options: dict[str, Any] = {
                "servers": s.servers,
                "connect_timeout": 10,
                "max_reconnect_attempts": 0,
                "allow_reconnect": False,
            }
            if s.username:
                options.update(user=s.username, password=s.password)
            if s.token:
                options["token"] = s.token
            self._nc = await nats.connect(**options)
            self._js = self._nc.jetstream()
            self._sub = None
            if self.stream:
                try:
                    await self._js.stream_info(self.stream)
                except nats.js.errors.NotFoundError:
                    await self._js.add_stream(name=self.stream, subjects=[self.subject or ">"])
        return self._js

    # -- producer ----------------------------------------------------------------------------
    async def _publish(self, messages: list[Outgoing]) -> None:
        js = await self._connect()
        sends = []
        for message in messages:
            subject = message.destination or self.subject
            if not subject:
                raise UnsupportedSystem("NATS: no subject to publish to (connection 'subject').")
            headers = {**message.headers, "Nats-Msg-Id": message.message_id}
            if message.key:
                headers["Gateway-Key"] = message.key
            sends.append(js.publish(subject, message.body, headers=headers, timeout=10))
        # Sent together, each awaiting its PubAck: the stream stored it (or knew its id).
        await asyncio.gather(*sends)

    def publish(self, messages: list[Outgoing]) -> None:
        self._run(self._publish(messages), 10.0 * max(len(messages), 1))

    # -- consumer ----------------------------------------------------------------------------
    async def _fetch(self, max_count: int, timeout: float) -> list[Any]:
        await self._connect()
        if self._sub is None:
            if not self.subject:
                raise UnsupportedSystem("NATS: the consumer has no subject (connection 'subject').")
            config = api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, ack_wait=60)
            self._sub = await self._js.pull_subscribe(
                self.subject, durable=self.durable, stream=self.stream or None, config=config
            )
        try:
            return list(await self._sub.fetch(batch=max_count, timeout=max(timeout, 0.05)))
        except (nats.errors.TimeoutError, TimeoutError):
            return []

    def receive(self, max_count: int, timeout: float) -> list[Message]:
        out = []
        for msg in self._run(self._fetch(max_count, timeout), timeout):
            meta = msg.metadata
            headers = {k: header_text(v) for k, v in (msg.headers or {}).items()}
            out.append(
                Message(
                    body=msg.data,
                    message_id=headers.get("Nats-Msg-Id")
                    or f"{meta.stream}:{meta.sequence.stream}",
                    subject=msg.subject,
                    timestamp=meta.timestamp.astimezone(dt.UTC).isoformat()
                    if meta.timestamp
                    else "",
                    redelivered=meta.num_delivered > 1,
                    headers=headers,
                    handle=msg,
                )
            )
        return out

    async def _ack(self, messages: list[Message]) -> None:
        for message in messages:
            await message.handle.ack()
        await self._nc.flush(timeout=10)

    def ack(self, messages: list[Message]) -> None:
        if messages:
            self._run(self._ack(messages))

    def check(self) -> str:
        self._run(self._connect())
        return f"NATS {','.join(self.settings.servers)} reachable" + (
            f", stream {self.stream}" if self.stream else ""
        )

    def _forget(self) -> None:
        nc, self._nc, self._js, self._sub = self._nc, None, None, None
        if nc is not None and self._loop is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(nc.close(), self._loop.loop).result(5)

    def close(self) -> None:
        self._forget()
        if self._loop is not None:
            self._loop.stop()
            self._loop = None

"""kombu's Redis transport, reusing one client object per channel for synchronous commands.

kombu builds a new `redis.Redis` for every publish, every unacked-bookkeeping step and every
ack (`Channel._create_client`), and each costs about 50 µs of CPU (the client copies its ~170
response callbacks): three per real-time flow run, across the web and the worker. A client
object is safe to share between threads (each command takes a connection from the channel's
pool; pipelines are objects of their own), so the channel keeps the first one.
Used when CELERY_BROKER_URL is a redis:// or rediss:// URL (gateway/settings.py).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

    # kombu's stubs leave out its private methods: hence the ignores.
    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        if self._sync_client is None:
            self._sync_client = super()._create_client()  # type: ignore[misc]
        return self._sync_client


class Transport(kombu_redis.Transport):
    Channel = Channel

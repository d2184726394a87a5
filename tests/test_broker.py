"""The fleet's Redis transport (gateway/broker.py): kombu's, with one client per channel."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection

from tests import services

pytestmark = pytest.mark.redis


def test_messages_go_through_and_the_channel_keeps_its_client() -> None:
    url = services.redis_url(db=0)
    name = f"broker-test-{uuid.uuid4().hex[:8]}"
    with Connection(url, transport="gateway.broker:Transport") as connection:
        queue = connection.SimpleQueue(name)
        try:
            # when messages are published and consumed (each step a Redis command)
            for n in range(3):
                queue.put({"n": n})
            received = []
            for _ in range(3):
                message = queue.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
            # then they arrive in order, acknowledged, through one client object
            assert received == [0, 1, 2]
            channel = queue.channel
            assert channel._create_client() is channel._create_client()
            assert channel._create_client(asynchronous=True) is not channel._create_client()
        finally:
            queue.queue.delete()
            queue.close()

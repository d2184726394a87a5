"""What gateway/broker.py buys: CPU per message through kombu's Redis transport, with kombu's
own channel (a new redis.Redis per publish, bookkeeping step and ack) and with the gateway's
(one client per channel). Publishes, consumes and acknowledges N messages on a throw-away
queue of the machine's Redis, as a Celery task's message goes; prints JSON (CPU µs/message,
best of the rounds, process CPU time so the machine's other load counts less).

Usage: .venv/bin/python bench/broker_client.py [--messages 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from kombu import Connection

URL = "redis://127.0.0.1:6379/0"
TRANSPORTS = {"kombu": "redis", "gateway": "gateway.broker:Transport"}


def one_round(transport: str, messages: int) -> dict[str, float]:
    name = f"bench-broker-{uuid.uuid4().hex[:8]}"
    with Connection(URL, transport=transport) as connection:
        queue = connection.SimpleQueue(name)
        try:
            payload = {"args": [12345], "kwargs": {}}
            began = time.process_time()
            for _ in range(messages):
                queue.put(payload)
            sent = time.process_time()
            for _ in range(messages):
                queue.get(timeout=10).ack()
            done = time.process_time()
        finally:
            queue.queue.delete()
            queue.close()
    return {
        "publish_us": (sent - began) / messages * 1e6,
        "consume_ack_us": (done - sent) / messages * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    report: dict[str, dict[str, float]] = {}
    for label, transport in TRANSPORTS.items():
        rounds = [one_round(transport, args.messages) for _ in range(args.rounds)]
        report[label] = {key: round(min(r[key] for r in rounds), 1) for key in rounds[0]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

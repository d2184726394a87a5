"""A RabbitMQ consumer through the real engine vs a hand-written pika consumer, same run.

100,000 JSON messages are published (with ids) to two queues of their own. The engine
consumes one with a consumer direct job into SQLite (batches of 1,000: change log made durable,
ids remembered, then acknowledged, then applied); the baseline consumes the other with pika,
inserting each batch into SQLite and acknowledging it only after the commit — the same
acknowledgement rule. Prints JSON: both times, their ratio (target ≤ 1.5), whether both tables
hold the same rows.

    python bench/messaging.py [--messages 100000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import run_engine, sqlite_figures

HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))
COLUMNS = ["id", "name", "qty", "price", "city"]


def message(i: int) -> bytes:
    return json.dumps(
        {
            "id": i,
            "name": f"customer {i} é",
            "qty": i % 1000,
            "price": round((i % 9973) * 1.25, 2),
            "city": ("Paris", "Lyon", "Nantes")[i % 3],
        }
    ).encode()


def publish(queue: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    for i in range(1, count + 1):
        channel.basic_publish(
            "",
            queue,
            message(i),
            pika.BasicProperties(message_id=f"m{i}", delivery_mode=pika.DeliveryMode.Persistent),
        )
    # A round trip after the last publish: the broker has them all before the clocks start.
    channel.queue_declare(queue, durable=True, passive=True)
    connection.close()


def drop(queue: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT))
    connection.channel().queue_delete(queue)
    connection.close()


def baseline(queue: str, target: Path, count: int, batch: int) -> float:
    """What a developer would hand-write: consume, insert a batch, commit, then acknowledge."""
    db = sqlite3.connect(target)
    db.execute("CREATE TABLE messages (id INTEGER, name TEXT, qty INTEGER, price REAL, city TEXT)")
    insert = "INSERT INTO messages VALUES (?,?,?,?,?)"
    connection = pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=batch)
    started = time.perf_counter()
    done = 0
    pending: list[tuple[int, bytes]] = []
    for method, _properties, body in channel.consume(queue, inactivity_timeout=0.5):
        if method is not None:
            pending.append((method.delivery_tag, body))
        if pending and (len(pending) >= batch or method is None):
            rows = [tuple(json.loads(b)[c] for c in COLUMNS) for _, b in pending]
            db.executemany(insert, rows)
            db.commit()  # durable first…
            channel.basic_ack(pending[-1][0], multiple=True)  # …then acknowledged
            done += len(pending)
            pending = []
            if done >= count:
                break
    seconds = time.perf_counter() - started
    channel.cancel()
    connection.close()
    db.close()
    return seconds


def checksum(path: Path) -> list[Any]:
    return sqlite_figures(
        path,
        "SELECT count(*), count(DISTINCT id), sum(id), sum(qty), total(price), "
        "sum(length(name)), sum(length(city)) FROM messages",
    )


def engine_job(queue: str, target: Path, count: int, batch: int) -> dict[str, Any]:
    """The consumer direct job the engine runs: appended rows (no upsert keys), like the
    baseline's INSERTs, stopped once `count` rows are written."""
    return {
        "key": "bench_consumer",
        "keys": None,
        "source": "bench_mq",
        "target": f"sqlite:///{target}",
        "target_table": "messages",
        "until_rows": count,
        "imports": ["jobs.systems.messaging.rabbitmq"],
        "connections": [
            {
                "key": "bench_mq",
                "system": "RabbitMQ",
                "type": "Messaging",
                "value": json.dumps(
                    {"service": "rabbitmq", "host": HOST, "port": PORT, "queue": queue}
                ),
            }
        ],
        "reader": {
            "PropagateDelete": None,
            "SyncStrategy": None,
            "JsonData": {
                "MessagingOptions": {
                    "MessageProcessing": 1,
                    "MessagingContentColumn": "",
                    "MessagingBatchEnabled": True,
                    "MessagingBatchCount": batch,
                    "MessagingFlushTTL": 0.5,
                },
            },
        },
        "writer": {"PropagateDelete": None},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    engine_queue, base_queue = f"messaging_bench_engine_{suffix}", f"messaging_bench_base_{suffix}"
    with tempfile.TemporaryDirectory(prefix="messaging_bench_") as tmp:
        work = Path(tmp)
        try:
            publish(engine_queue, args.messages)
            publish(base_queue, args.messages)
            base_seconds = baseline(
                base_queue, work / "baseline.sqlite3", args.messages, args.batch
            )
            result = run_engine(
                work / "data",
                engine_job(engine_queue, work / "engine.sqlite3", args.messages, args.batch),
            )
            print(json.dumps(result), file=sys.stderr)
        finally:
            drop(engine_queue)
            drop(base_queue)
        same = checksum(work / "engine.sqlite3") == checksum(work / "baseline.sqlite3")
    print(
        json.dumps(
            {
                "messages": args.messages,
                "batch": args.batch,
                "baseline_pika_seconds": round(base_seconds, 3),
                "engine_seconds": result["seconds"],
                "ratio": round(result["seconds"] / base_seconds, 2),
                "target_ratio": 1.5,
                "engine_status": result["status"],
                "same_rows": same,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

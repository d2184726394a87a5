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
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pika

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
    db = sqlite3.connect(path)
    try:
        return list(
            db.execute(
                "SELECT count(*), count(DISTINCT id), sum(id), sum(qty), total(price), "
                "sum(length(name)), sum(length(city)) FROM messages"
            ).fetchone()
        )
    finally:
        db.close()


def run_engine(data_dir: Path, queue: str, target: Path, count: int, batch: int) -> dict:
    env = dict(os.environ)
    env.update(
        GATEWAY_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="gateway.settings",
        GATEWAY_LOG_LEVEL="WARNING",
        # The target is a throw-away SQLite file named by URL, not by stored key.
        GATEWAY_INLINE_CONNECTIONS="true",
    )
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, __file__, "child", queue, str(target), str(count), str(batch)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"engine child failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(queue: str, target: str, count: int, batch: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import jobs.sync.run  # noqa: F401  (a worker imports the engine once, before any run)
    from jobs import runner, services
    from jobs.models import ConnectionString, ConnectionType, Execution, Job, JobKind

    stored = ConnectionString(
        key="bench_mq", system="RabbitMQ", connection_type=ConnectionType.MESSAGING
    )
    stored.value = json.dumps({"service": "rabbitmq", "host": HOST, "port": PORT, "queue": queue})
    stored.save()
    reader = Job.objects.create(
        kind=JobKind.READER,
        job_key="bench_consumer",
        definition={
            "JobKey": "bench_consumer",
            "Path": "C:\\tmp\\bench",
            "ConnectionString": "bench_mq",
            "JsonData": {
                "KeepChangedLogFiles": False,
                "MessagingOptions": {
                    "MessageProcessing": 1,
                    "MessagingContentColumn": "",
                    "MessagingBatchEnabled": True,
                    "MessagingBatchCount": batch,
                    "MessagingFlushTTL": 0.5,
                },
            },
        },
    )
    writer = Job.objects.create(
        kind=JobKind.WRITER,
        job_key="__bench_consumer",
        source=reader,
        definition={
            "JobKey": "__bench_consumer",
            "Path": "C:\\tmp\\bench",
            "ConnectionString": f"sqlite:///{target}",
            "SourceJobKey": "bench_consumer",
            "TargetObject": "messages",
            "Options": {"BatchCount": 10_000},
        },
    )
    reader.direct_writer = writer
    reader.save()
    execution = services.new_execution(reader)
    claimed = runner.claim(execution.pk)
    assert claimed is not None
    started = time.perf_counter()
    thread = threading.Thread(target=runner.run_claimed, args=(claimed,), daemon=True)
    thread.start()
    while True:
        time.sleep(0.05)
        row = Execution.objects.filter(pk=claimed.pk).values(
            "records_direct_written", "status", "error_message"
        )[0]
        if row["records_direct_written"] >= count or row["status"] != "running":
            break
    seconds = time.perf_counter() - started
    services.stop_job(reader)
    thread.join(60)
    claimed.refresh_from_db()
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "status": claimed.status,
                "error": claimed.error_message if claimed.status == "failed" else "",
                "records_direct_written": claimed.records_direct_written,
                "summary": next(
                    (
                        e.message
                        for e in claimed.log_entries.order_by("-sequence")
                        if "seconds receiving" in e.message
                    ),
                    "",
                ),
            }
        )
    )


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
                work / "data", engine_queue, work / "engine.sqlite3", args.messages, args.batch
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
    if len(sys.argv) == 6 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()

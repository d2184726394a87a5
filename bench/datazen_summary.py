"""GET /jobs/summary over 2,000 jobs, next to GET /version (the baseline) in the same run.

Runs the real WSGI app under waitress on a free port, with a throw-away SQLite data
directory, and prints the figures as JSON. Usage: .venv/bin/python bench/datazen_summary.py
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JOBS = int(os.environ.get("BENCH_JOBS", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
DIRECT_EVERY = 3  # one reader in three is a direct job with a writer


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["GATEWAY_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-datazen-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "gateway.settings"
    os.environ.pop("DATABASE_URL", None)  # always a throw-away SQLite, never a real database
    os.environ.setdefault("GATEWAY_LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def seed(count: int) -> str:
    """`count` jobs (readers, a third of them direct with writers), two runs each; the key."""
    from django.utils import timezone

    from jobs.models import AccessKey, ConnectionString, Execution, Job

    readers = count * DIRECT_EVERY // (DIRECT_EVERY + 1)
    ConnectionString.objects.create(key="db", system="PostgreSQL", connection_type="DB")
    Job.objects.bulk_create(
        Job(
            kind="reader",
            job_key=f"reader-{n:05d}",
            connection_key="db",
            cron_schedule="0 */5 * ? * *",
            definition={
                "JobKey": f"reader-{n:05d}",
                "ConnectionString": "db",
                "SqlRead": "SELECT * FROM films",
                "Path": "C:\\tmp",
                "UpsertColumns": "film_id",
                "SystemName": "PostgreSQL",
                "JsonData": {"AuditLogEnabled": True},
            },
        )
        for n in range(readers)
    )
    direct = list(Job.objects.filter(kind="reader").order_by("id")[: count - readers])
    Job.objects.bulk_create(
        Job(
            kind="writer",
            job_key=f"__{r.job_key}",
            source=r,
            definition={"JobKey": f"__{r.job_key}", "TargetSystem": "DB", "ConnectionString": "db"},
        )
        for r in direct
    )
    writers = {w.source_id: w for w in Job.objects.filter(kind="writer")}
    for reader in direct:
        reader.direct_writer = writers[reader.pk]
    Job.objects.bulk_update(direct, ["direct_writer"])
    now = timezone.now()
    Execution.objects.bulk_create(
        Execution(
            job=job,
            job_guid=job.guid,
            job_key=job.job_key,
            listener_type=job.kind,
            status="succeeded",
            success=True,
            record_count=10,
            created_on=now - timedelta(minutes=age),
        )
        for job in Job.objects.all()
        for age in (10, 5, 0)
    )
    _, raw = AccessKey.generate("bench")
    return raw


def serve() -> tuple[Any, int]:
    import waitress

    from gateway.wsgi import application

    server = waitress.create_server(application, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return server, server.effective_port


def measure(port: int, key: str, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"SharedKey {key}"}

    def once() -> tuple[float, int, int]:
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return time.perf_counter() - start, response.status, len(body)

    once()  # warm-up: connection, caches, last-used stamp
    timings, status, size = [], 0, 0
    for _ in range(ROUNDS):
        elapsed, status, size = once()
        timings.append(elapsed * 1000)
    conn.close()
    timings.sort()
    return {
        "path": path,
        "status": status,
        "bytes": size,
        "rounds": ROUNDS,
        "median_ms": round(statistics.median(timings), 2),
        "p95_ms": round(timings[max(0, int(len(timings) * 0.95) - 1)], 2),
        "min_ms": round(timings[0], 2),
    }


def count_queries(key: str, path: str) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"SharedKey {key}")
    with CaptureQueriesContext(connection) as captured:
        client.get(path)
    return len(captured.captured_queries)


def main() -> None:
    setup_django()
    key = seed(JOBS)
    # The server thread is a daemon: it ends with the process (closing it under a channel
    # that is still finishing makes waitress log a spurious error).
    _, port = serve()
    version = measure(port, key, "/version")
    summary = measure(port, key, "/jobs/summary")
    info = measure(port, key, "/jobs/info")
    for figures in (version, summary, info):
        figures["queries"] = count_queries(key, figures["path"])
    report = {
        "benchmark": "datazen_summary",
        "jobs": JOBS,
        "database": "sqlite",
        "baseline": version,
        "jobs_summary": summary,
        "jobs_info": info,
        "summary_vs_version_median": round(summary["median_ms"] / version["median_ms"], 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

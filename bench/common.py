"""Shared benchmark plumbing: run the real engine in a child process and measure it.

The child (`python bench/common.py child …`) sets Django up on its own data directory,
creates (or reuses) a direct job, runs one execution through jobs.runner and prints JSON
with the run's seconds, counters and its own peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_engine(data_dir: Path, job: dict[str, Any], options: dict[str, Any] | None = None) -> dict:
    """One execution of the direct job described by `job`, in a fresh child process."""
    env = dict(os.environ)
    env["GATEWAY_DATA_DIR"] = str(data_dir)
    env["DJANGO_SETTINGS_MODULE"] = "gateway.settings"
    env.pop("DATABASE_URL", None)
    env["GATEWAY_LOG_LEVEL"] = "WARNING"
    # The benchmark jobs name their throw-away databases by URL, not by stored key.
    env["GATEWAY_INLINE_CONNECTIONS"] = "true"
    payload = json.dumps({"job": job, "options": options or {}})
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "child", payload],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"engine child failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(payload: str) -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from jobs import runner, services
    from jobs.models import Job, JobKind

    # A worker imports the engine once, at its first task: keep that out of the timing.
    import_module("jobs.sync.run")

    spec = json.loads(payload)
    job_def = spec["job"]
    key = job_def["key"]
    reader = Job.objects.filter(job_key=key, kind=JobKind.READER).first()
    if reader is None:
        reader = Job.objects.create(
            kind=JobKind.READER,
            job_key=key,
            definition={
                "JobKey": key,
                "SqlRead": job_def["sql"],
                "Path": "C:\\tmp\\bench",
                "UpsertColumns": job_def.get("keys", "id"),
                "ConnectionString": job_def["source"],
                "PropagateDelete": True,
                "SyncStrategy": "Full",
                "JsonData": {"KeepChangedLogFiles": False},
            },
        )
        writer = Job.objects.create(
            kind=JobKind.WRITER,
            job_key=f"__{key}",
            source=reader,
            definition={
                "JobKey": f"__{key}",
                "Path": "C:\\tmp\\bench",
                "UpsertColumns": job_def.get("keys", "id"),
                "ConnectionString": job_def["target"],
                "PropagateDelete": True,
                "SourceJobKey": key,
                "TargetObject": job_def["target_table"],
                "Options": {"BatchCount": 10_000},
            },
        )
        reader.direct_writer = writer
        reader.save()
    execution = services.new_execution(reader, options=spec["options"])
    started, cpu_started = time.perf_counter(), time.process_time()
    claimed = runner.claim(execution.pk)
    assert claimed is not None
    runner.run_claimed(claimed)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    claimed.refresh_from_db()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                # CPU time of every thread of the run: steadier than wall time on a busy machine
                "cpu_seconds": round(cpu_seconds, 3),
                "status": claimed.status,
                "error": claimed.error_message,
                "record_count": claimed.record_count,
                "delete_count": claimed.delete_count,
                "records_direct_written": claimed.records_direct_written,
                "peak_rss_mb": round(peak_kb / 1024, 1),
            }
        )
    )


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "child":
    _child(sys.argv[2])

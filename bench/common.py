"""Shared benchmark plumbing: run the real engine in a child process and measure it.

The child (`python bench/common.py child …`) sets Django up on its own data directory,
stores the connection strings the job names (if any), creates (or reuses) a direct job, runs
one execution through jobs.runner and prints JSON with the run's seconds, CPU seconds,
counters and its own peak RSS. `compare` turns alternating baseline and engine runs into the
figures every benchmark prints.
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


def run_engine(
    data_dir: Path,
    job: dict[str, Any],
    options: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
) -> dict:
    """One execution of the direct job described by `job`, in a fresh child process.

    `job`: `key`, `source` and `target` (connection strings or stored keys), `target_table`,
    `keys` (default `id`), and either `sql` (a database reader) or `reader`: definition fields
    laid over the reader's (`{"JsonData": {"DriveSourceSettings": …}}`). `connections`:
    `[{"key", "system", "type", "value"}]` stored before the job is made. `env`: more
    environment for the child (`GATEWAY_DRIVE_ROOT`).
    """
    env = {**os.environ, **(env or {})}
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
    from jobs.models import ConnectionString, Job, JobKind

    # A worker imports the engine once, at its first task: keep that out of the timing.
    import_module("jobs.sync.run")

    spec = json.loads(payload)
    job_def = spec["job"]
    key = job_def["key"]
    for stored in job_def.get("connections", []):
        if not ConnectionString.objects.filter(key=stored["key"]).exists():
            connection = ConnectionString(
                key=stored["key"], system=stored["system"], connection_type=stored["type"]
            )
            connection.value = stored["value"]
            connection.save()
    reader = Job.objects.filter(job_key=key, kind=JobKind.READER).first()
    if reader is None:
        definition = {
            "JobKey": key,
            "Path": "C:\\tmp\\bench",
            "UpsertColumns": job_def.get("keys", "id"),
            "ConnectionString": job_def["source"],
            "PropagateDelete": True,
            "SyncStrategy": "Full",
            "JsonData": {"KeepChangedLogFiles": False},
        }
        if "sql" in job_def:
            definition["SqlRead"] = job_def["sql"]
        for name, value in job_def.get("reader", {}).items():
            if name == "JsonData":
                definition["JsonData"] = {**definition["JsonData"], **value}
            else:
                definition[name] = value
        reader = Job.objects.create(kind=JobKind.READER, job_key=key, definition=definition)
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


def timed_cpu(fn: Any, *args: Any) -> tuple[float, float, Any]:
    """(wall seconds, this process's CPU seconds, result): a baseline run in this process."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - started, time.process_time() - cpu_started, result


def compare(
    name: str,
    base_runs: list[tuple[float, float]],
    engine_runs: list[dict[str, Any]],
    *,
    ratio_target: float,
    **figures: Any,
) -> dict[str, Any]:
    """The figures of alternating runs: each side's best (the machine is shared, so a burst
    of load elsewhere should not decide the ratio), by wall time and by CPU time.

    `base_runs` are (wall, CPU) seconds; `engine_runs` the child's JSON. The CPU ratio counts
    every thread of the engine (its writer runs beside its reader) and the baseline's one.
    """
    base_wall = min(wall for wall, _ in base_runs)
    base_cpu = min(cpu for _, cpu in base_runs)
    best = min(engine_runs, key=lambda run: run["seconds"])
    engine_cpu = min(run.get("cpu_seconds", run["seconds"]) for run in engine_runs)
    return {
        "benchmark": name,
        **figures,
        "baseline_seconds": round(base_wall, 3),
        "engine_seconds": best["seconds"],
        "ratio": round(best["seconds"] / base_wall, 2),
        "ratio_target": ratio_target,
        "cpu_ratio": round(engine_cpu / base_cpu, 2) if base_cpu else None,
        "baseline_runs": [round(wall, 3) for wall, _ in base_runs],
        "engine_runs": [run["seconds"] for run in engine_runs],
        "baseline_cpu_runs": [round(cpu, 3) for _, cpu in base_runs],
        "engine_cpu_runs": [run.get("cpu_seconds") for run in engine_runs],
        "engine_peak_rss_mb": max(run["peak_rss_mb"] for run in engine_runs),
        "status": best["status"],
        "error": best["error"],
    }


def ratio_line(result: dict[str, Any]) -> str:
    """One line for a person reading the output: the ratio against its target."""
    verdict = "within" if result["ratio"] <= result["ratio_target"] else "OVER"
    label = " ".join(str(result[k]) for k in ("benchmark", "format") if result.get(k) is not None)
    return (
        f"{label}: engine {result['engine_seconds']:.2f} s / baseline "
        f"{result['baseline_seconds']:.2f} s = {result['ratio']:.2f}x "
        f"(CPU {result['cpu_ratio']}x), {verdict} the {result['ratio_target']}x target"
    )


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "child":
    _child(sys.argv[2])

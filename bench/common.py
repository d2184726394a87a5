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
import sqlite3
import subprocess
import sys
import threading
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
    `keys` (default `id`; None: no UpsertColumns, rows are appended), and either `sql` (a
    database reader) or `reader`: definition fields laid over the reader's (`{"JsonData":
    {"DriveSourceSettings": …}}`; a field set to None is removed); `writer` likewise over the
    writer's. `connections`: `[{"key", "system", "type", "value"}]` stored before the job is
    made. `imports`: modules the job's first run would load (a broker's client), loaded before
    the clock starts as the engine is. `until_rows`: the source never ends (a consumer): the
    run is timed from its claim until that many rows are written, then stopped. `env`: more
    environment for the child (`GATEWAY_DRIVE_ROOT`).
    """
    # The benchmark jobs name their throw-away databases by URL, not by stored key.
    extra = {"GATEWAY_INLINE_CONNECTIONS": "true", **(env or {})}
    payload = json.dumps({"job": job, "options": options or {}})
    return child_result(Path(__file__), ["child", payload], data_dir, extra)


def child_result(
    script: Path,
    args: list[str],
    data_dir: Path,
    env: dict[str, str] | None = None,
    *,
    what: str = "engine child",
) -> dict:
    """Run `python script *args` as an engine child on its own data directory (the gateway's
    settings, its own SQLite database, warnings only) and return the JSON of its last line."""
    child_env = {**os.environ, **(env or {})}
    child_env["GATEWAY_DATA_DIR"] = str(data_dir)
    child_env["DJANGO_SETTINGS_MODULE"] = "gateway.settings"
    child_env.pop("DATABASE_URL", None)
    child_env["GATEWAY_LOG_LEVEL"] = "WARNING"
    done = subprocess.run(
        [sys.executable, str(script.resolve()), *args],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _overlay(definition: dict[str, Any], fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if value is None:
            definition.pop(name, None)
        elif name == "JsonData":
            definition["JsonData"] = {**definition.get("JsonData", {}), **value}
        else:
            definition[name] = value


def _child(payload: str) -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from jobs import runner, services
    from jobs.models import ConnectionString, Job, JobKind
    from jobs.systems import registry

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
        keys = job_def.get("keys", "id")
        definition = {
            "JobKey": key,
            "Path": "C:\\tmp\\bench",
            "UpsertColumns": keys,
            "ConnectionString": job_def["source"],
            "PropagateDelete": True,
            "SyncStrategy": "Full",
            "JsonData": {"KeepChangedLogFiles": False},
        }
        if "sql" in job_def:
            definition["SqlRead"] = job_def["sql"]
        _overlay(definition, {"UpsertColumns": keys, **job_def.get("reader", {})})
        reader = Job.objects.create(kind=JobKind.READER, job_key=key, definition=definition)
        definition = {
            "JobKey": f"__{key}",
            "Path": "C:\\tmp\\bench",
            "UpsertColumns": keys,
            "ConnectionString": job_def["target"],
            "PropagateDelete": True,
            "SourceJobKey": key,
            "TargetObject": job_def["target_table"],
            "Options": {"BatchCount": 10_000},
        }
        _overlay(definition, {"UpsertColumns": keys, **job_def.get("writer", {})})
        writer = Job.objects.create(
            kind=JobKind.WRITER, job_key=f"__{key}", source=reader, definition=definition
        )
        reader.direct_writer = writer
        reader.save()
    # Likewise a kind's connector, at the first run of that kind (jobs.systems.registry), and
    # the modules its first run loads (`imports`: a broker's client).
    for reference in (job_def["source"], job_def["target"]):
        registry.system_for(registry.resolve(reference))
    for module in job_def.get("imports", []):
        import_module(module)
    execution = services.new_execution(reader, options=spec["options"])
    if "until_rows" in job_def:
        print(json.dumps(_consume(execution, job_def["until_rows"])))
        return
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


def _consume(execution: Any, rows: int) -> dict[str, Any]:
    """A consumer run (it never ends by itself), timed from its claim until `rows` rows are
    written, then stopped: the figures of bench/messaging.py."""
    # Django is set up by the child before these load (the models need the app registry).
    from jobs import runner, services
    from jobs.models import Execution

    claimed = runner.claim(execution.pk)
    assert claimed is not None
    started, cpu_started = time.perf_counter(), time.process_time()
    thread = threading.Thread(target=runner.run_claimed, args=(claimed,), daemon=True)
    thread.start()
    while True:
        time.sleep(0.05)
        row = Execution.objects.filter(pk=claimed.pk).values(
            "records_direct_written", "status", "error_message"
        )[0]
        if row["records_direct_written"] >= rows or row["status"] != "running":
            break
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    services.stop_job(claimed.job)
    thread.join(60)
    claimed.refresh_from_db()
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
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
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def timed_cpu(fn: Any, *args: Any, clock: Any = time.process_time) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result): a baseline run in this process. The CPU is the
    process's; `clock=time.thread_time` counts this thread's alone (a bench serving its
    source from threads of this process, whose work is the source's, not the baseline's)."""
    started, cpu_started = time.perf_counter(), clock()
    result = fn(*args)
    return time.perf_counter() - started, clock() - cpu_started, result


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


def best_figures(
    baseline_name: str,
    base_runs: list[float],
    engine_runs: list[dict[str, Any]],
    *,
    ratio_target: float,
    checks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The figures of alternating runs by wall time: each side's best, their ratio, every run,
    the engine child's peak RSS; with `checks` (bench.servers.compare of each engine run's
    target), whether every target matched its source and the first differences."""
    base = min(base_runs)
    engine = min(engine_runs, key=lambda run: run["seconds"])
    figures: dict[str, Any] = {
        baseline_name: round(base, 3),
        "engine_seconds": engine["seconds"],
        "engine_cpu_seconds": engine["cpu_seconds"],
        "ratio": round(engine["seconds"] / base, 2),
        "ratio_target": ratio_target,
        "baseline_runs": [round(s, 3) for s in base_runs],
        "engine_runs": [run["seconds"] for run in engine_runs],
        "engine_peak_rss_mb": max(run["peak_rss_mb"] for run in engine_runs),
        "status": engine["status"],
        "error": engine["error"],
    }
    if checks is not None:
        figures["target_matches_source"] = all(check["matches"] for check in checks)
        figures["differences"] = [d for check in checks for d in check["differences"]][:5]
    return figures


def sqlite_figures(path: Path, sql: str) -> list[Any]:
    """The one row of an aggregate query on a SQLite file (a target's checksum)."""
    db = sqlite3.connect(path)
    try:
        return list(db.execute(sql).fetchone())
    finally:
        db.close()


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

"""DataFlux real-time executions under load, next to GET /serverInfo measured in the same run.

Serves the gateway as `make run` does (`manage.py run`: waitress, embedded engines) on a
throw-away data directory, uploads Determine_Gender.ddf (standardize a name, gender node) and
Dedupe_Contacts.ddf (standardize, match codes, clusters), then drives 2-row and 100-row
executions of each and an authenticated GET /serverInfo from concurrent clients (separate
processes, keep-alive connections) over loopback; each case's p50 and p99 are also printed over
serverInfo's (`over_serverInfo`). A default run lasts longer than DATAFLUX_AUTH_CACHE_SECONDS,
so it crosses the moment a remembered login would expire if it were not kept while in use
(docs/dataflux.md, Benchmark). BENCH_GENDER_FLOW names another file to upload as
Determine_Gender.ddf (to compare a former version in the same session). `--fleet` measures the
same against a Redis broker, a `celery -A gateway worker` and PostgreSQL (when it answers on
127.0.0.1:5432) too. Prints JSON.

Usage: .venv/bin/python bench/realtime.py [--seconds 20] [--clients 8] [--fleet [--no-embedded]]
       [--cases serverInfo,rows_2,rows_100,dedupe_2,dedupe_100]
The fleet's worker is `-P threads -c 8` unless BENCH_WORKER_POOL / BENCH_WORKER_CONCURRENCY
say otherwise.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASE = "/SASDataMgmtRTDataJob/rest"
FLOW = "Determine_Gender.ddf"
FLOW_ID = base64.b64encode(FLOW.encode()).decode()
DEDUPE = "Dedupe_Contacts.ddf"
DEDUPE_ID = base64.b64encode(DEDUPE.encode()).decode()
CASES = ("serverInfo", "rows_2", "rows_100", "dedupe_2", "dedupe_100")
USER, PASSWORD = "bench", "bench-password-1"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
METADATA = "application/vnd.sas.datamgmt.jobflow.metadata+json"
FIRST_NAMES = ["mary smith", "john doe", "anna  lee", "robert_brown", "xena", "pat"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rows_body(count: int) -> bytes:
    data = [[FIRST_NAMES[n % len(FIRST_NAMES)]] for n in range(count)]
    inputs = {"dataTable": {"metadata": [{"name": "Name", "type": "string"}], "data": data}}
    return json.dumps({"inputs": inputs}).encode()


GIVEN = ["Mary", "John", "Anna", "Robert", "Linda", "David", "Susan", "Mark", "Karen", "Paul"]
FAMILY = ["Smith", "Doe", "Lee", "Brown", "Garcia", "Miller", "Davis", "Lopez", "Clark", "King"]
STREETS = ["Oak Street", "West Main Avenue", "Elm Court", "Lake Drive", "Hill Road"]


def contacts_body(count: int) -> bytes:
    """`count` contacts, every fourth one the contact before it written differently (upper
    case, Smyth-like spelling, another phone format)."""
    data: list[list[Any]] = []
    for n in range(count):
        if n % 4 == 3:
            _, name, email, phone, address = data[-1]
            data.append([n, name.upper(), email.upper(), phone.replace(") ", ")"), address])
            continue
        given, family = GIVEN[n % 10], FAMILY[(n // 10) % 10]
        name = f"{given} {family}"
        email = f"{given}.{family}{n}@example.com".lower()
        phone = f"(415) 555-{n:04d}"
        address = f"{n + 1} {STREETS[n % 5]}, Austin, TX 78701"
        data.append([n, name, email, phone, address])
    metadata = [{"name": name} for name in ("Id", "Name", "Email", "Phone", "Address")]
    return json.dumps({"inputs": {"contacts": {"metadata": metadata, "data": data}}}).encode()


def scenario_request(name: str) -> tuple[str, str, bytes | None, dict[str, str]]:
    if name == "serverInfo":
        return "GET", f"{BASE}/serverInfo", None, {"Authorization": AUTH}
    count = int(name.split("_")[1])
    headers = {"Authorization": AUTH, "Accept": METADATA, "Content-Type": METADATA}
    if name.startswith("dedupe"):
        return "POST", f"{BASE}/jobFlowDefns/{DEDUPE_ID}", contacts_body(count), headers
    return "POST", f"{BASE}/jobFlowDefns/{FLOW_ID}", rows_body(count), headers


def client_loop(port: int, name: str, seconds: float, out: Any) -> None:
    method, path, body, headers = scenario_request(name)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    errors = 0
    first_error = ""
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException) as exc:
            ok, payload = False, str(exc).encode()
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        elapsed = time.perf_counter() - started
        if ok:
            latencies.append(elapsed)
        else:
            errors += 1
            first_error = first_error or payload[:300].decode("utf-8", "replace")
    out.put({"latencies": latencies, "errors": errors, "first_error": first_error})


def measure(port: int, name: str, clients: int, seconds: float) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    procs = [
        context.Process(target=client_loop, args=(port, name, seconds, queue))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    latencies = sorted(x for r in results for x in r["latencies"])
    errors = sum(r["errors"] for r in results)
    figures: dict[str, Any] = {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": round(len(latencies) / seconds, 1),
    }
    if latencies:
        figures.update(
            p50_ms=round(statistics.median(latencies) * 1000, 2),
            p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
            mean_ms=round(statistics.fmean(latencies) * 1000, 2),
            max_ms=round(latencies[-1] * 1000, 2),
            # A stall of a few requests hides below the p99 of a fast case; these show it.
            over_1s=sum(1 for x in latencies if x > 1.0),
        )
    if errors:
        figures["first_error"] = next(r["first_error"] for r in results if r["first_error"])
    return figures


def call(port: int, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_serving(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited:\n{log.read_text()[-3000:]}")
        try:
            status, _ = call(port, "GET", f"{BASE}/serverInfo", None, {"Authorization": AUTH})
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the gateway did not answer:\n{log.read_text()[-3000:]}")


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


def start(stack: ExitStack, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = stack.enter_context(log.open("w"))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()

    stack.callback(stop)
    return process


def run_mode(
    mode: str,
    clients: int,
    seconds: float,
    database_url: str | None = None,
    cases: tuple[str, ...] = CASES,
) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-realtime-{mode}-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings",
        GATEWAY_DATA_DIR=str(data_dir),
        GATEWAY_LOG_LEVEL="WARNING",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    if mode == "fleet":
        tag = uuid.uuid4().hex[:8]
        env.update(
            CELERY_BROKER_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            CELERY_RESULT_BACKEND=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            CELERY_TASK_DEFAULT_QUEUE=f"bench-gateway-{tag}",
            DATAFLUX_QUEUE=f"bench-flows-{tag}",
        )
        if database_url:
            env["DATABASE_URL"] = database_url
    manage(env, "migrate", "--noinput")
    manage(env, "createsuperuser", "--noinput", "--username", USER, "--email", "b@example.com")
    with ExitStack() as stack:
        web_log = data_dir / "web.log"
        command = [sys.executable, "manage.py", "run", "--host", "127.0.0.1", "--port", str(port)]
        if mode == "fleet":
            command += ["--no-scheduler"]
            start(
                stack,
                [
                    str(BIN / "celery"),
                    "-A",
                    "gateway",
                    "worker",
                    "-P",
                    os.environ.get("BENCH_WORKER_POOL", "threads"),
                    "-c",
                    os.environ.get("BENCH_WORKER_CONCURRENCY", "8"),
                    "-Q",
                    env["DATAFLUX_QUEUE"],
                    "--loglevel",
                    "WARNING",
                    "-n",
                    f"bench-{port}@%h",
                ],
                env,
                data_dir / "worker.log",
            )
        web = start(stack, command, env, web_log)
        wait_until_serving(port, web, web_log)
        gender = Path(os.environ.get("BENCH_GENDER_FLOW") or ROOT / "docs" / "examples" / FLOW)
        for name, source in ((FLOW, gender), (DEDUPE, ROOT / "docs" / "examples" / DEDUPE)):
            content = base64.b64encode(source.read_bytes()).decode()
            body = json.dumps({"version": 1, "name": name, "content": content})
            status, payload = call(
                port,
                "POST",
                f"{BASE}/jobFlowDefns",
                body.encode(),
                {"Authorization": AUTH, "Content-Type": "application/json"},
            )
            if status != 200:
                raise RuntimeError(f"upload failed: {status} {payload[:300]!r}")
        for name in ("rows_2", "dedupe_2"):
            method, path, request_body, headers = scenario_request(name)
            status, payload = call(port, method, path, request_body, headers)
            if status != 200:
                raise RuntimeError(f"execution failed: {status} {payload[:500]!r}")
        # Warm every engine and code path before measuring.
        for name in cases:
            measure(port, name, clients, min(2.0, seconds))
        figures = {name: measure(port, name, clients, seconds) for name in cases}
    base_p50 = figures.get("serverInfo", {}).get("p50_ms")
    two = figures.get("rows_2", {})
    result: dict[str, Any] = {"mode": mode, "clients": clients, "seconds": seconds}
    if mode == "fleet":
        result["database"] = "postgresql" if database_url else "sqlite"
    result.update(figures)
    # Each case against the baseline of the same run: serverInfo (authentication, one SELECT).
    base = figures.get("serverInfo", {})
    result["over_serverInfo"] = {
        name: {
            "p50": round(case["p50_ms"] / base["p50_ms"], 2),
            "p99": round(case["p99_ms"] / base["p99_ms"], 2),
        }
        for name, case in figures.items()
        if name != "serverInfo" and case.get("p50_ms") and base.get("p50_ms")
    }
    if base_p50 and two.get("p50_ms"):
        result["rows_2_p50_over_serverInfo_p50"] = round(two["p50_ms"] / base_p50, 2)
        result["targets_met"] = {
            "rows_2_p50_under_2x_serverInfo": two["p50_ms"] < 2 * base_p50,
            "rows_2_p99_under_50ms": two["p99_ms"] < 50,
            "no_errors": all(figures[n]["errors"] == 0 for n in figures),
        }
    return result


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A throw-away PostgreSQL database for the fleet (as a fleet runs), or None without one."""
    if not reachable(5432):
        yield None
        return
    import psycopg

    name = f"bench_realtime_{uuid.uuid4().hex[:8]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 20)))
    parser.add_argument("--clients", type=int, default=int(os.environ.get("BENCH_CLIENTS", 8)))
    parser.add_argument("--fleet", action="store_true", help="also measure Redis + celery worker")
    parser.add_argument("--no-embedded", action="store_true", help="measure the fleet only")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases to run")
    args = parser.parse_args()
    cases = tuple(case for case in args.cases.split(",") if case)
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    report: dict[str, Any] = {}
    if not args.no_embedded:
        report["embedded"] = run_mode("embedded", args.clients, args.seconds, cases=cases)
    if args.fleet:
        if not reachable(6379):
            report["fleet"] = {"skipped": "Redis is not reachable on 127.0.0.1:6379"}
        else:
            with postgres_database() as database_url:
                report["fleet"] = run_mode(
                    "fleet", args.clients, args.seconds, database_url, cases=cases
                )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""An HTTP source through the real engine vs a hand-written httpx loop, in the same run.

A local server serves 100,000 rows as JSON pages of 1,000 (`?offset=&limit=`). The engine
reads them with an HTTP reader (offset paging) into a SQLite table through a direct job; the
baseline fetches the same pages with httpx and upserts them into the same kind of table.
Prints JSON: both times and CPU times, their ratios (target ≤ 1.5) and whether both tables
match.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import compare, ratio_line, run_engine, sqlite_figures, timed_cpu

PAGE = 1000
COLUMNS = ["id", "name", "qty", "price", "city", "updated"]


def make_rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f"customer {i} é",
            "qty": i % 1000,
            "price": round((i % 9973) * 1.25, 2),
            "city": ("Paris", "Lyon", "Nantes")[i % 3],
            "updated": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00",
        }
        for i in range(1, count + 1)
    ]


def serve(rows: list[dict[str, Any]]) -> tuple[ThreadingHTTPServer, str]:
    # Pages are serialised once, so the server's own cost is the same for both clients.
    pages = {
        start: json.dumps({"items": rows[start : start + PAGE]}).encode()
        for start in range(0, len(rows) + PAGE, PAGE)
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            body = pages.get(int(query.get("offset", ["0"])[0]), b'{"items": []}')
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/api"


def baseline(base_url: str, target: Path) -> int:
    """What a developer would hand-write: page through with httpx, upsert into SQLite."""
    db = sqlite3.connect(target)
    db.execute(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, "
        "city TEXT, updated TEXT)"
    )
    upsert = "INSERT INTO items VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET " + ", ".join(
        f"{c} = excluded.{c}" for c in COLUMNS[1:]
    )
    total = 0
    db.execute("BEGIN")
    with httpx.Client(timeout=30) as client:
        offset = 0
        while True:
            response = client.get(f"{base_url}/items", params={"offset": offset, "limit": PAGE})
            response.raise_for_status()
            items = response.json()["items"]
            db.executemany(upsert, [tuple(item[c] for c in COLUMNS) for item in items])
            total += len(items)
            if len(items) < PAGE:
                break
            offset += len(items)
    db.commit()
    db.close()
    return total


def checksum(path: Path) -> list[Any]:
    return sqlite_figures(
        path,
        "SELECT count(*), sum(id), sum(qty), total(price), sum(length(name)), "
        "max(updated), sum(length(city)) FROM items",
    )


def engine_job(base_url: str, target: Path) -> dict[str, Any]:
    """The direct job the engine runs: an HTTP reader (offset paging) into a SQLite table,
    both stored connections (jobs name stored keys: inline ones are off by default)."""
    return {
        "key": "bench_http",
        "source": "bench_api",
        "target": "bench_target",
        "target_table": "items",
        "connections": [
            {
                "key": "bench_api",
                "system": "HTTP",
                "type": "HTTP",
                "value": json.dumps({"service": "http", "baseUrl": base_url}),
            },
            {
                "key": "bench_target",
                "system": "SQLite",
                "type": "DB",
                "value": f"sqlite:///{target}",
            },
        ],
        "reader": {
            "PropagateDelete": None,
            "SyncStrategy": None,
            "JsonData": {
                "HttpSourceSettings": {
                    "IsRESTRequest": True,
                    "HTTPURI": "/items",
                    "HTTPVerb": "GET",
                    "ApplyContentTx": True,
                    "PayloadTxSettings": {"TxDocumentRootPath": "$.items"},
                    "PagingStrategy": "offset",
                    "OffsetStrategy": {"PageSize": PAGE},
                },
            },
        },
        "writer": {"PropagateDelete": None},
        # httpx loads its transport library (httpcore) with its first client: a worker's first
        # HTTP run, as the loop's first run here.
        "imports": ["httpcore"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2, help="alternate runs; the best counts")
    args = parser.parse_args()
    rows = make_rows(args.rows)
    server, base_url = serve(rows)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
            folder = Path(tmp)
            base_runs: list[tuple[float, float]] = []
            engine_runs: list[dict[str, Any]] = []
            same = True
            for attempt in range(max(1, args.repeat)):
                base_target = folder / f"baseline{attempt}.sqlite3"
                # The server's threads are this process's too: the loop's CPU is its thread's.
                wall, cpu, _ = timed_cpu(baseline, base_url, base_target, clock=time.thread_time)
                base_runs.append((wall, cpu))
                target = folder / f"target{attempt}.sqlite3"
                engine_runs.append(
                    run_engine(folder / f"data{attempt}", engine_job(base_url, target))
                )
                if engine_runs[-1]["status"] != "succeeded":
                    raise RuntimeError(f"the engine's run failed: {engine_runs[-1]['error']}")
                same = same and checksum(target) == checksum(base_target)
        result = compare(
            "http_source", base_runs, engine_runs, ratio_target=1.5, rows=args.rows, page_rows=PAGE
        )
        result["target_matches_baseline"] = same
        print(ratio_line(result), file=sys.stderr, flush=True)
        print(json.dumps(result, indent=2))
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()

"""The gateway against its peers and hand-written references, PostgreSQL → PostgreSQL (issue 20).

Builds `bench/sync_postgres.py`'s table once (10 columns, `--rows` rows), then, alternating,
`--runs` rounds of every tool: a full load into an empty target database, then a re-run after
1% of the source's rows were updated, 0.1% deleted and 0.1% inserted (the source is put back
afterwards). Every target is compared with the source row by row after each run; the re-run's
comparison says whether the deleted rows left the target.

Tools:
- references, in child processes of their own: the binary `COPY … TO STDOUT` of one `psql`
  piped into the binary `COPY … FROM STDIN` of another (the physical limit); psycopg `COPY` →
  `COPY` in one Python process (`sync_postgres.py`'s baseline); psycopg `fetchmany` +
  `executemany` upsert. Their re-runs do what each naturally does again: the `COPY` ones reload
  the table (so deletes propagate), the upsert loop upserts every row (so they do not);
- the gateway: the direct job `sync_postgres.py` times, through `bench/common.py`;
- peers, each installed into a virtual environment of its own under `--cache-dir`: ingestr<1
  (0.15.9 ships its native binary in the wheel; later ones download it at run time), dlt with
  its fast setting (`bench/peer_scripts/dlt_run.py`), Sling from the `sling-linux-amd64`
  wheel. Each loads with upsert on `id` ("merge" / "incremental"), the mode in which a re-run
  keeps the target. A peer that cannot be installed is reported with pip's last error line.

Wall time is the whole child process (peers are command-line tools and pay their start-up;
the gateway's figure is its run, as in `sync_postgres.py`, with its process time beside it).
Peak RSS is the largest sum of the resident sets of this process's descendants, sampled every
50 ms (shared pages count once per process; a child not yet exec'd is not counted), or for the
gateway its engine process's own `ru_maxrss` if that is higher.

Prints the table (Markdown) and, with --json, the whole report as JSON instead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, run_engine
from bench.sync_postgres import ADMIN, COLUMNS, HOST, PORT, SCHEMA, USER, baseline, dsn
from bench.sync_postgres import create_source as create_source_table

PREFIX = "peers"
# dlt's postgres destination refuses a URL without a password even where the server trusts
# the client; a trusting server ignores whatever is sent.
PASSWORD = os.environ.get("TEST_POSTGRES_PASSWORD", "") or "unused"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gateway-peers"
UPSERT = (
    f"INSERT INTO dst ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS.split(", ")[1:])
)
# Each column as the same text whatever type a tool gave it in its target (dlt and ingestr
# choose their own: text for varchar, their own numeric scale, timestamps without zone…).
ROW_DIGEST = (
    "SELECT id::bigint, md5(concat_ws('|', qty::bigint, stock::bigint, price::numeric(12,2), "
    "weight::float8, code::text, name::text, note::text, day::date, at::timestamptz)) "
    "FROM {table} ORDER BY 1"
)


def url(database: str, password: bool = False) -> str:
    secret = f":{PASSWORD}" if password else ""
    return f"postgresql://{USER}{secret}@{HOST}:{PORT}/{database}"


# --- the source and its changes ------------------------------------------------------------


def build_source(database: str, rows: int) -> None:
    create_source_table(database, rows)
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        # The rows the change touches, to put the source back for the next tool's full load.
        conn.execute(
            "CREATE TABLE peers_saved AS SELECT * FROM src WHERE id % 100 = 0 OR id % 1000 = 1"
        )


def change_source(database: str, rows: int) -> dict[str, int]:
    """1% of the rows updated, 0.1% deleted, 0.1% inserted (ids after the last one)."""
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        updated = conn.execute(
            "UPDATE src SET qty = qty + 1, name = name || '*', at = at + interval '1 hour' "
            "WHERE id % 100 = 0"
        ).rowcount
        deleted = conn.execute("DELETE FROM src WHERE id % 1000 = 1").rowcount
        inserted = conn.execute(
            "INSERT INTO src SELECT i, i %% 1000, i * 7, (i %% 100000) / 100.0, random(), "
            "'C' || lpad(i::text, 9, '0'), 'new ' || i, repeat('y', 10 + (i %% 30)::int), "
            "date '2025-01-01' + (i %% 365)::int, now() "
            "FROM generate_series(%s::bigint + 1, %s::bigint + %s / 1000) AS i",
            (rows, rows, rows),
        ).rowcount
        conn.execute("VACUUM ANALYZE src")
    return {"updated": updated, "deleted": deleted, "inserted": inserted}


def restore_source(database: str, rows: int) -> None:
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("DELETE FROM src WHERE id > %s OR id %% 100 = 0", (rows,))
            conn.execute("INSERT INTO src SELECT * FROM peers_saved")
        conn.execute("VACUUM ANALYZE src")


def _digests(database: str, table: str) -> Iterator[tuple[int, str]]:
    with psycopg.connect(dsn(database)) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        with conn.cursor(name="peers_compare") as cursor:
            cursor.itersize = 50_000
            cursor.execute(ROW_DIGEST.format(table=table))
            yield from cursor


def compare(source: str, target: str, table: str) -> dict[str, Any]:
    """Row by row, in key order: rows missing from the target, extra in it, or different."""
    missing = extra = different = 0
    try:
        left, right = _digests(source, "src"), _digests(target, table)
        a, b = next(left, None), next(right, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a[0] < b[0]):
                missing, a = missing + 1, next(left, None)
            elif a is None or b[0] < a[0]:
                extra, b = extra + 1, next(right, None)
            else:
                different += a[1] != b[1]
                a, b = next(left, None), next(right, None)
    except psycopg.Error as exc:
        return {"matches": False, "error": str(exc).strip().splitlines()[0]}
    return {
        "matches": missing == extra == different == 0,
        "missing": missing,
        "extra": extra,
        "different": different,
    }


# --- measuring a process tree ---------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
    except OSError:
        pass
    return found


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _rss_bytes(pid: int) -> int:
    # Between fork and exec a child is still a copy of this process and shows its resident set
    # (measured: it put 55 MB on a psql pipe of 20 MB), so it is not counted until it execs.
    if _cmdline(pid) == OWN_CMDLINE:
        return 0
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


PAGE = os.sysconf("SC_PAGE_SIZE")
OWN_CMDLINE = _cmdline(os.getpid())


class TreeMemory(threading.Thread):
    """Peak of the summed resident sets of this process's descendants while it runs."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            total, todo = 0, _children(os.getpid())
            while todo:
                pid = todo.pop()
                total += _rss_bytes(pid)
                todo.extend(_children(pid))
            self.peak = max(self.peak, total)
            self._done.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()


def run_child(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> dict:
    """Run one tool's process to its end: wall seconds, peak RSS of its tree, its failure."""
    with TreeMemory() as memory:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        output, _ = process.communicate()
        seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(memory.peak / 2**20, 1),
    }
    if process.returncode != 0:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        result["error"] = f"exit {process.returncode}: " + " | ".join(lines[-3:])[-600:]
    return result


# --- the tools ------------------------------------------------------------------------------


@dataclass
class Context:
    source: str
    target: str
    rerun: bool
    work: Path
    venv: Path | None = None


@dataclass
class Tool:
    name: str
    label: str
    table: str  # where the tool leaves the rows in the target database
    run: Callable[[Context], dict]
    requirements: list[str] = field(default_factory=list)  # empty: not a peer to install


def _self(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "child", *args]


def run_copy_pipe(ctx: Context) -> dict:
    if not ctx.rerun:
        with psycopg.connect(dsn(ctx.target), autocommit=True) as conn:
            conn.execute(SCHEMA.format(name="dst"))
    reload = "TRUNCATE dst; " if ctx.rerun else ""
    # One psql per end, as a shell pipe: no Python on the data path. The reload truncates in
    # the COPY's own transaction (psql -1), as a real reload would.
    script = (
        f"psql -X -q -v ON_ERROR_STOP=1 -d {url(ctx.source)} "
        f"-c 'COPY (SELECT {COLUMNS} FROM src) TO STDOUT (FORMAT binary)' | "
        f"psql -X -q -1 -v ON_ERROR_STOP=1 -d {url(ctx.target)} "
        f"-c '{reload}COPY dst ({COLUMNS}) FROM STDIN (FORMAT binary)'"
    )
    return run_child(["bash", "-o", "pipefail", "-c", script])


def run_psycopg_copy(ctx: Context) -> dict:
    return run_child(_self("psycopg_copy", ctx.source, ctx.target, str(int(ctx.rerun))))


def run_upsert_loop(ctx: Context) -> dict:
    if not ctx.rerun:
        with psycopg.connect(dsn(ctx.target), autocommit=True) as conn:
            conn.execute(SCHEMA.format(name="dst"))
    return run_child(_self("upsert_loop", ctx.source, ctx.target))


def run_gateway(ctx: Context) -> dict:
    job = {
        "key": "bench_postgres",
        "sql": f"SELECT {COLUMNS} FROM src",
        "source": url(ctx.source),
        "target": url(ctx.target),
        "target_table": "dst",
    }
    with TreeMemory() as memory:
        started = time.perf_counter()
        try:
            engine = run_engine(ctx.work / "gateway-data", job)
        except RuntimeError as exc:
            return {"seconds": 0.0, "peak_rss_mb": 0.0, "error": str(exc)[-600:]}
        process_seconds = time.perf_counter() - started
    result = {
        "seconds": engine["seconds"],
        "process_seconds": round(process_seconds, 3),
        "peak_rss_mb": max(engine["peak_rss_mb"], round(memory.peak / 2**20, 1)),
        "record_count": engine["record_count"],
        "delete_count": engine["delete_count"],
    }
    if engine["status"] != "succeeded":
        result["error"] = f"{engine['status']}: {engine['error']}"[:600]
    return result


def run_ingestr(ctx: Context) -> dict:
    assert ctx.venv is not None
    argv = [
        str(ctx.venv / "bin" / "ingestr"),
        "ingest",
        "--source-uri",
        url(ctx.source),
        "--source-table",
        "public.src",
        "--dest-uri",
        url(ctx.target),
        "--dest-table",
        "public.dst",
        "--incremental-strategy",
        "merge",
        "--primary-key",
        "id",
        "--pipelines-dir",
        str(ctx.work / "ingestr-pipelines"),
        "--progress",
        "log",
        "--yes",
    ]
    env = {**os.environ, "INGESTR_DISABLE_TELEMETRY": "true", "DISABLE_TELEMETRY": "true"}
    return run_child(argv, env=env, cwd=ctx.work)


def run_dlt(ctx: Context) -> dict:
    assert ctx.venv is not None
    argv = [
        str(ctx.venv / "bin" / "python"),
        str(Path(__file__).resolve().parent / "peer_scripts" / "dlt_run.py"),
        url(ctx.source, password=True),
        url(ctx.target, password=True),
        str(ctx.work / "dlt-pipelines"),
        "peers_dlt",
    ]
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    return run_child(argv, env=env, cwd=ctx.work)


def _sling_binary(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages/sling_linux_amd64/bin/sling-linux-amd64"))
    if not found:
        raise FileNotFoundError(f"no sling binary in {venv}")
    return found[0]


def run_sling(ctx: Context) -> dict:
    assert ctx.venv is not None
    argv = [
        str(_sling_binary(ctx.venv)),
        "run",
        "--src-conn",
        "PEERS_SOURCE",
        "--src-stream",
        "public.src",
        "--tgt-conn",
        "PEERS_TARGET",
        "--tgt-object",
        "public.dst",
        "--mode",
        "incremental",
        "--primary-key",
        "id",
    ]
    env = {
        **os.environ,
        "PEERS_SOURCE": url(ctx.source, password=True) + "?sslmode=disable",
        "PEERS_TARGET": url(ctx.target, password=True) + "?sslmode=disable",
        "SLING_HOME_DIR": str(ctx.work / "sling-home"),
        "SLING_DISABLE_TELEMETRY": "true",
    }
    return run_child(argv, env=env, cwd=ctx.work)


TOOLS = [
    Tool(
        "copy_pipe",
        "binary `COPY … TO STDOUT` \\| `COPY … FROM STDIN` (psql pipe)",
        "dst",
        run_copy_pipe,
    ),
    Tool("psycopg_copy", "psycopg `COPY` → `COPY` in one Python process", "dst", run_psycopg_copy),
    Tool(
        "ingestr",
        "ingestr 0.15.9 (native binary in its wheel), merge",
        "public.dst",
        run_ingestr,
        ["ingestr<1"],
    ),
    Tool(
        "dlt",
        "dlt, ConnectorX `arrow_stream` + Parquet via ADBC, merge",
        "peers_dlt.src",  # dlt names the table after its resource, the source table
        run_dlt,
        [
            "dlt[postgres,parquet]>=1.5,<2",
            "connectorx>=0.4,<0.5",
            "adbc-driver-postgresql>=1.0,<2",
            # dlt's sql_database source reflects the table with SQLAlchemy; 2.1 maps
            # postgresql:// to psycopg 3, which dlt's postgres extra does not bring.
            "sqlalchemy>=2,<2.1",
        ],
    ),
    Tool(
        "sling",
        "Sling 1.4.11 (`sling-linux-amd64` wheel), incremental on `id`",
        "public.dst",
        run_sling,
        ["sling-linux-amd64==1.4.11"],
    ),
    Tool("gateway", "**this gateway** (direct job, `sync_postgres.py`'s)", "dst", run_gateway),
    Tool("upsert_loop", "psycopg `fetchmany` + `executemany` upsert", "dst", run_upsert_loop),
]


# --- installing the peers -------------------------------------------------------------------


def install(tool: Tool, cache: Path) -> tuple[Path | None, str]:
    """The tool's virtual environment, created once per requirement set; or pip's error."""
    digest = hashlib.sha1("\n".join(tool.requirements).encode()).hexdigest()[:10]
    venv = cache / f"{tool.name}-{digest}"
    if (venv / ".installed").exists():
        return venv, ""
    shutil.rmtree(venv, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", *tool.requirements],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            # pip's index warnings come first; the reason is its last line.
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            return None, lines[-1] if lines else f"exit {done.returncode}"
    (venv / ".installed").write_text("\n".join(tool.requirements) + "\n")
    return venv, ""


# --- the run --------------------------------------------------------------------------------


def _create(database: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')


def _drop(database: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def one_round(tool: Tool, source: str, rows: int, work: Path, venv: Path | None) -> dict:
    target = f"{PREFIX}_{tool.name}_{uuid.uuid4().hex[:8]}"
    _create(target)
    try:
        ctx = Context(source=source, target=target, rerun=False, work=work, venv=venv)
        full = tool.run(ctx)
        full["compare"] = compare(source, target, tool.table)
        if "error" in full:
            return {"full": full}
        changes = change_source(source, rows)
        try:
            ctx.rerun = True
            rerun = tool.run(ctx)
            rerun["compare"] = compare(source, target, tool.table)
            extra = rerun["compare"].get("extra")
            rerun["deletes_propagated"] = None if extra is None else extra == 0
            rerun["changes"] = changes
        finally:
            restore_source(source, rows)
        return {"full": full, "rerun": rerun}
    finally:
        _drop(target)


def _seconds(runs: list[dict], phase: str) -> list[float]:
    return [run[phase]["seconds"] for run in runs if phase in run and "error" not in run[phase]]


def summarise(tool: Tool, runs: list[dict]) -> dict:
    full, rerun = _seconds(runs, "full"), _seconds(runs, "rerun")
    phases = [run[p] for run in runs for p in ("full", "rerun") if p in run]
    errors = [phase["error"] for phase in phases if "error" in phase]
    reruns = [run["rerun"] for run in runs if "rerun" in run and "error" not in run["rerun"]]
    return {
        "label": tool.label,
        "full_seconds": full,
        "rerun_seconds": rerun,
        "peak_rss_mb": max((phase["peak_rss_mb"] for phase in phases), default=None),
        "full_matches": all(run["full"]["compare"].get("matches") for run in runs) and bool(full),
        "rerun_matches": all(r["compare"].get("matches") for r in reruns) and bool(reruns),
        "deletes_propagated": all(r["deletes_propagated"] for r in reruns) if reruns else None,
        "errors": errors,
        "runs": runs,
    }


def _span(values: list[float]) -> str:
    if not values:
        return "—"
    low, high = min(values), max(values)
    return f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}-{high:.1f}"


_DELETES = {True: "**yes**", False: "no", None: "-"}


def _verdict(tool: dict, phase: str) -> str:
    """The worst comparison of the phase's runs, in words."""
    found = [run[phase]["compare"] for run in tool["runs"] if phase in run]
    if not found:
        return "-"
    if all(c.get("matches") for c in found):
        return "equal"
    if any("error" in c for c in found):
        return "cannot compare: " + next(c["error"] for c in found if "error" in c)
    worst = max(found, key=lambda c: (c["missing"], c["different"], c["extra"]))
    if worst["missing"] == worst["different"] == 0:
        return f"equal but {worst['extra']:,} deleted rows left"
    return (
        f"{worst['missing']:,} missing, {worst['different']:,} different, {worst['extra']:,} extra"
    )


def table(report: dict) -> str:
    lines = [
        f"PostgreSQL → PostgreSQL, {report['rows']:,} rows x 10 columns, {report['runs']} runs "
        f"each, alternating; re-run after {report['changes']}. Load average at the start "
        f"{report['load_average'][0]}, at the end {report['load_average_end'][0]}.",
        "",
        "| tool | full load, s | peak RSS | re-run, s | target against source (full / re-run) "
        "| deletes propagated |",
        "|---|---|---|---|---|---|",
    ]
    ordered = sorted(
        report["tools"].items(),
        key=lambda item: min(item[1].get("full_seconds") or [float("inf")]),
    )
    for name, tool in ordered:
        if "not_installed" in tool:
            lines.append(f"| {tool['label']} | not installed: {tool['not_installed']} | | | | |")
            continue
        if not tool["full_seconds"]:
            lines.append(f"| {tool['label']} | failed: {tool['errors'][0]} | | | | |")
            continue
        full = _span(tool["full_seconds"])
        if name == "gateway":
            process = [run["full"]["process_seconds"] for run in tool["runs"]]
            full = f"**{full}** (process {_span(process)})"
        rss = tool["peak_rss_mb"]
        lines.append(
            f"| {tool['label']} | {full} | {rss:.0f} MB | {_span(tool['rerun_seconds'])} "
            f"| {_verdict(tool, 'full')} / {_verdict(tool, 'rerun')} "
            f"| {_DELETES[tool['deletes_propagated']]} |"
        )
    lines.append("")
    for name, tool in ordered:
        for error in dict.fromkeys(tool.get("errors", [])):
            lines.append(f"- {name}: {error}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=2, help="rounds of every tool, alternating")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="peers' venvs")
    parser.add_argument("--no-peers", action="store_true", help="the gateway and references only")
    parser.add_argument(
        "--only", help="comma-separated tool names (" + ", ".join(t.name for t in TOOLS) + ")"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--save", type=Path, help="also write the report as JSON to this file")
    args = parser.parse_args()
    tools = [t for t in TOOLS if not (args.no_peers and t.requirements)]
    if args.only:
        wanted = set(args.only.split(","))
        tools = [t for t in tools if t.name in wanted]
    report: dict[str, Any] = {
        "benchmark": "peers",
        "rows": args.rows,
        "runs": args.runs,
        "changes": "1% updated, 0.1% deleted, 0.1% inserted",
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "tools": {},
    }
    venvs: dict[str, Path | None] = {}
    for tool in tools:
        if tool.requirements:
            venv, error = install(tool, args.cache_dir)
            if venv is None:
                report["tools"][tool.name] = {"label": tool.label, "not_installed": error}
                continue
            venvs[tool.name] = venv
        else:
            venvs[tool.name] = None
    runnable = [t for t in tools if t.name in venvs]
    source = f"{PREFIX}_src_{uuid.uuid4().hex[:8]}"
    _create(source)
    results: dict[str, list[dict]] = {t.name: [] for t in runnable}
    try:
        build_source(source, args.rows)
        with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
            for attempt in range(max(1, args.runs)):
                # Alternate, and reverse the order every other round so no tool always runs
                # right after the same neighbour (or on the freshest cache).
                order = runnable if attempt % 2 == 0 else runnable[::-1]
                for tool in order:
                    work = Path(tmp) / f"{tool.name}-{attempt}"
                    work.mkdir()
                    results[tool.name].append(
                        one_round(tool, source, args.rows, work, venvs[tool.name])
                    )
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        _drop(source)
    for tool in runnable:
        report["tools"][tool.name] = summarise(tool, results[tool.name])
    report["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    if args.save:
        args.save.write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(table(report))


def _child_psycopg_copy(source: str, target: str, rerun: str) -> None:
    if rerun == "1":
        # A reload: sync_postgres.py's baseline creates its table, so the old one goes first.
        with psycopg.connect(dsn(target), autocommit=True) as conn:
            conn.execute("DROP TABLE dst")
    baseline(source, target)


def _child_upsert_loop(source: str, target: str) -> None:
    with psycopg.connect(dsn(source)) as src, psycopg.connect(dsn(target)) as dst:
        with src.cursor(name="peers_read") as read, dst.cursor() as write:
            read.execute(f"SELECT {COLUMNS} FROM src")
            while rows := read.fetchmany(10_000):
                write.executemany(UPSERT, rows)
        dst.commit()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "child":
        {"psycopg_copy": _child_psycopg_copy, "upsert_loop": _child_upsert_loop}[sys.argv[2]](
            *sys.argv[3:]
        )
    else:
        main()

"""`manage.py run`: one instance per data directory, a port in use, a second Ctrl-C — each a
clear line, and nothing the live instance runs is touched."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.processes import ROOT, free_port, gateway_env, manage, started, wait_for_http

pytestmark = pytest.mark.slow

# Rows the job generates (a recursive CTE, nothing to seed): enough that it still runs when
# the second instance and the two Ctrl-Cs come, on a loaded machine.
ROWS = 5_000_000
# A gateway's start-up is some 3 CPU-seconds (Django, Celery, the engine): on a machine loaded
# 15 deep that took more than a minute, so waits for a start are not a measure of anything.
START_SECONDS = 240


def _run(port: int) -> list[str]:
    return [sys.executable, "manage.py", "run", "--port", str(port)]


def _refused(port: int, env: dict[str, str]) -> tuple[int, list[str], set[str]]:
    """`run` expected to leave at once: exit code, its output's lines, the modules it loaded.

    It must decide before Django loads the gateway: that start-up is some 3 CPU-seconds, which
    on a loaded machine took more than a minute before the lock was even looked at.
    """
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *_run(port)[1:]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=START_SECONDS,
    )  # fmt: skip
    lines, modules = [], set()
    for line in (result.stdout + result.stderr).strip().splitlines():
        if line.startswith("import time:"):
            modules.add(line.rsplit("|", 1)[1].strip())
        else:
            lines.append(line)
    return result.returncode, lines, modules


def _loaded_the_gateway(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in ("jobs", "datazen", "dataflux")}


def _served_gateway(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A migrated data directory with a big SQLite → SQLite direct job `films`; env, auth."""
    env = gateway_env(tmp_path / "var")
    manage(env, "migrate", "--noinput")
    key = manage(env, "createaccesskey", "ops").strip().splitlines()[-1]
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
        db.executemany("INSERT INTO films VALUES (?, ?)", ((i, f"film {i}") for i in range(ROWS)))
    for name, path in (("src", source), ("dst", target)):
        manage(
            env, "setconnection", name, "--system", "SQLite", "--type", "DB",
            "--value", f"sqlite:///{path}",
        )  # fmt: skip
    return env, {"Authorization": f"SharedKey {key}"}


FILMS_JOB = {
    "JobReader": {
        "JobKey": "films",
        "SqlRead": (
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) "
            "SELECT i AS id, 'film ' || i AS title FROM n"
        ),
        "Path": "films",
        "UpsertColumns": "id",
        "ConnectionString": "src",
        "SyncStrategy": "Full",
        "Active": True,
        "JsonData": {"DirectWriter": "__films"},
    },
    "JobWriter": {
        "JobKey": "__films",
        "ConnectionString": "dst",
        "TargetObject": "films",
        "UpsertColumns": "id",
        "Active": True,
    },
}


def _executions(tmp_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "var" / "gateway.sqlite3", timeout=30) as db:
        return db.execute("SELECT status, error_message FROM jobs_execution ORDER BY id").fetchall()


def _wait_for_status(tmp_path: Path, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(row[0] == status for row in _executions(tmp_path)):
        assert time.monotonic() < deadline, f"no execution became {status}"
        time.sleep(0.05)


def test_a_second_instance_leaves_the_live_one_alone_and_a_second_ctrl_c_stops_at_once(
    tmp_path,
):
    env, auth = _served_gateway(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with started(_run(port), env, tmp_path / "run.log") as live:
        wait_for_http(f"{base}/version", timeout=START_SECONDS)
        # given a job running in the live instance
        assert requests.post(f"{base}/job", json=FILMS_JOB, headers=auth).status_code == 200
        guid = next(
            row["Guid"]
            for row in requests.get(f"{base}/jobs/summary", headers=auth).json()
            if row["JobKey"] == "films"
        )
        assert requests.post(f"{base}/job/start?guid={guid}", headers=auth).text == "OK"
        _wait_for_status(tmp_path, "running", timeout=START_SECONDS)
        # when a second instance starts on the same data directory (another port)
        code, lines, modules = _refused(free_port(), env)
        # then it leaves at once with one line naming the live one, closing nothing
        assert code == 1, lines
        assert len(lines) == 1, lines
        assert f"pid {live.pid}" in lines[0] and f"serving http://127.0.0.1:{port}/" in lines[0]
        assert not _loaded_the_gateway(modules), sorted(_loaded_the_gateway(modules))
        assert all(error == "" for _, error in _executions(tmp_path)), _executions(tmp_path)
        # when the live one gets Ctrl-C twice while its job runs
        live.send_signal(signal.SIGINT)
        time.sleep(0.5)
        live.send_signal(signal.SIGINT)
        code = live.wait(15)
    log = (tmp_path / "run.log").read_text()
    # then it stops at once with one clear line, no traceback, the execution left open
    assert code == 1, log
    assert "Stopped at once: jobs still running are closed as interrupted" in log
    assert "Traceback" not in log
    assert {status for status, _ in _executions(tmp_path)} == {"running"}
    # and the next start closes it, and serves
    with started(_run(port), env, tmp_path / "run2.log") as again:
        wait_for_http(f"{base}/version", timeout=START_SECONDS)
        again.send_signal(signal.SIGINT)
        assert again.wait(START_SECONDS) == 0, (tmp_path / "run2.log").read_text()
    assert "was interrupted by a restart" in (tmp_path / "run2.log").read_text()
    closed = _executions(tmp_path)
    assert closed and all(s == "failed" and e.startswith("Interrupted") for s, e in closed)


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path):
    env = gateway_env(tmp_path / "var")
    manage(env, "migrate", "--noinput")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # when
        code, lines, modules = _refused(port, env)
    # then
    assert code == 1
    assert lines == [
        f"Port {port} on 127.0.0.1 is already in use by another program; "
        "choose another with --port or GATEWAY_PORT."
    ]
    assert not _loaded_the_gateway(modules), sorted(_loaded_the_gateway(modules))

"""`make run`'s process: web server, embedded worker and scheduler in one, stopped by Ctrl-C."""

import base64
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import requests
from waitress import wasyncore

from gateway.management.commands.run import Stop
from tests.processes import ROOT, free_port, gateway_env, manage, started, wait_for_http

pytestmark = pytest.mark.slow


def test_run_serves_the_apis_and_the_console_and_stops_cleanly(tmp_path):
    # given a fresh data directory, migrated and bootstrapped as `make run` does
    env = gateway_env(tmp_path / "var")
    manage(env, "migrate", "--noinput")
    printed = manage(env, "bootstrap")
    key = printed.split("may decrypt): ")[1].split()[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # when
    with started(
        [sys.executable, "manage.py", "run", "--port", str(port)], env, tmp_path / "run.log"
    ) as process:
        wait_for_http(f"{base}/admin/login/")
        version = requests.get(f"{base}/version", headers={"Authorization": f"SharedKey {key}"})
        refused = requests.get(f"{base}/version", headers={"Authorization": "SharedKey nope"})
        login = requests.get(f"{base}/admin/login/")
        css = requests.get(f"{base}/static/admin/css/base.css")
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
    # then
    assert version.status_code == 200 and version.json()["Version"]["Running"] is True
    assert refused.status_code == 401
    assert login.status_code == 200 and "Django administration" in login.text
    assert css.status_code == 200
    assert code == 0
    assert "Stopped." in (tmp_path / "run.log").read_text()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc to find the writer")
def test_flow_runs_are_written_by_a_writer_process_and_survive_its_loss(tmp_path):
    # given a served gateway with a flow, and a user to run it
    env = gateway_env(tmp_path / "var", DJANGO_SUPERUSER_PASSWORD="run-secret")
    manage(env, "migrate", "--noinput")
    manage(env, "createsuperuser", "--noinput", "--username", "ops", "--email", "o@example.com")
    port = free_port()
    url = f"http://127.0.0.1:{port}/SASDataMgmtRTDataJob/rest"
    session = requests.Session()
    session.auth = ("ops", "run-secret")
    flow = base64.b64encode(b"Determine_Gender.ddf").decode()
    xml = (ROOT / "docs" / "examples" / "Determine_Gender.ddf").read_bytes()
    inputs = {"dataTable": {"metadata": [{"name": "Name"}], "data": [["anna"]]}}

    def run() -> int:
        answer = session.post(
            f"{url}/jobFlowDefns/{flow}",
            json={"inputs": inputs},
            headers={"Accept": "application/vnd.sas.datamgmt.jobflow.metadata+json"},
            timeout=30,
        )
        return answer.status_code

    with started(
        [sys.executable, "manage.py", "run", "--port", str(port)], env, tmp_path / "run.log"
    ) as process:
        wait_for_http(f"{url}/")
        body = {"name": "Determine_Gender.ddf", "content": base64.b64encode(xml).decode()}
        assert session.post(f"{url}/jobFlowDefns", json=body, timeout=30).status_code == 200
        # when runs are answered, the recorder starts its writer process
        assert run() == 200
        deadline = time.monotonic() + 30
        writers: list[int] = []
        while not writers and time.monotonic() < deadline:
            writers = [
                p for p in _children(process.pid) if "jobs.flows.runtime.writer" in _command(p)
            ]
            time.sleep(0.1)
        assert len(writers) == 1
        # and when the writer dies, later runs are written by the recorder thread
        os.kill(writers[0], signal.SIGKILL)
        statuses = [run() for _ in range(3)]
        # and Ctrl-C writes what is still queued before the gateway stops
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
    assert statuses == [200] * 3 and code == 0
    with sqlite3.connect(tmp_path / "var" / "gateway.sqlite3") as db:
        runs = db.execute("SELECT status, requested_by FROM jobs_execution").fetchall()
        logs = db.execute("SELECT COUNT(*) FROM jobs_logentry").fetchone()[0]
    assert runs == [("succeeded", "ops")] * 4 and logs == 4
    log = (tmp_path / "run.log").read_text()
    assert "recorder thread writes" in log
    assert not [p for p in writers if Path(f"/proc/{p}").exists()]


def test_a_stop_signal_landing_while_waitress_reads_a_request_still_ends_its_loop():
    # given the exception `manage.py run`'s signal handler raises, raised where waitress
    # handles a request's read (a Ctrl-C arriving while a client's request is being read)
    class Reading:
        def handle_read_event(self):
            raise Stop("SIGINT")

        def handle_error(self):  # what waitress does with any other exception: log, go on
            raise AssertionError("waitress swallowed the stop")

    # then it leaves waitress's loop instead of being logged and dropped with the channel
    with pytest.raises(Stop):
        wasyncore.read(Reading())

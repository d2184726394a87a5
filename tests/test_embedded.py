"""`make run`'s process: web server, embedded worker and scheduler in one, stopped by Ctrl-C."""

import signal
import sys

import pytest
import requests

from tests.processes import free_port, gateway_env, manage, started, wait_for_http

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

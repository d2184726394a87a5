"""The fleet, natively: web (gunicorn), two Celery workers and one scheduler on PostgreSQL and
Redis. A job started through the HTTP API runs in a worker process, not in the web process."""

import sqlite3
import sys
import time
import uuid

import psycopg
import pytest
import requests

from tests import services
from tests.processes import (
    celery_worker,
    free_port,
    gateway_env,
    gunicorn,
    manage,
    started,
    wait_for_http,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def django_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgres://")


def test_a_job_started_over_http_runs_in_a_fleet_worker(tmp_path):
    redis = services.redis_url(db=0)
    queue = f"fleet_{uuid.uuid4().hex[:8]}"
    with services.postgres_database() as database:
        # given a fleet configured by environment, as docker-compose.yml configures it
        env = gateway_env(
            tmp_path / "var",
            DATABASE_URL=django_url(database),
            CELERY_BROKER_URL=redis,
            CELERY_RESULT_BACKEND=redis,
            CELERY_TASK_DEFAULT_QUEUE=queue,
            DJANGO_SECRET_KEY="fleet-test-secret",
            GATEWAY_SCHEDULER_INTERVAL="1",
        )
        manage(env, "migrate", "--noinput")
        key = manage(env, "createaccesskey", "fleet").strip().splitlines()[-1]
        source, target = tmp_path / "source.db", tmp_path / "target.db"
        with sqlite3.connect(source) as db:
            db.execute("CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
            db.executemany("INSERT INTO films VALUES (?, ?)", [(i, f"film {i}") for i in range(50)])
        manage(
            env,
            "setconnection",
            "src",
            "--system",
            "SQLite",
            "--type",
            "DB",
            "--value",
            f"sqlite:///{source}",
        )
        manage(
            env,
            "setconnection",
            "dst",
            "--system",
            "SQLite",
            "--type",
            "DB",
            "--value",
            f"sqlite:///{target}",
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"SharedKey {key}"}
        with (
            started(gunicorn(port), env, tmp_path / "web.log") as web_process,
            started(celery_worker(queue, f"w1-{queue}@%h"), env, tmp_path / "w1.log") as w1,
            started(celery_worker(queue, f"w2-{queue}@%h"), env, tmp_path / "w2.log") as w2,
            started([sys.executable, "manage.py", "runscheduler"], env, tmp_path / "sched.log"),
        ):
            wait_for_http(f"{base}/version")
            # when a direct job is created and started over the DataZen API
            job = {
                "JobReader": {
                    "JobKey": "films",
                    "SqlRead": "SELECT id, title FROM films",
                    "Path": "fleet",
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
            assert requests.post(f"{base}/job", json=job, headers=auth).status_code == 200
            summary = requests.get(f"{base}/jobs/summary", headers=auth).json()
            guid = next(row["Guid"] for row in summary if row["JobKey"] == "films")
            assert requests.post(f"{base}/job/start?guid={guid}", headers=auth).text == "OK"
            history = wait_for_history(base, guid, auth)
            # then it succeeded, the rows arrived, and a worker process ran it
            assert history[0]["Success"] is True, history[0]["ErrorMessage"]
            with sqlite3.connect(target) as db:
                assert db.execute("SELECT count(*) FROM films").fetchone()[0] == 50
            with psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://")) as db:
                workers = {row[0] for row in db.execute("SELECT worker FROM jobs_execution")}
            pids = {name.rsplit(":", 1)[1] for name in workers}
            assert pids <= {str(w1.pid), str(w2.pid)}, (pids, w1.pid, w2.pid)
            assert str(web_process.pid) not in pids


def wait_for_history(base: str, guid: str, auth: dict[str, str], timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = requests.get(f"{base}/job/history?guid={guid}&filter=all", headers=auth).json()
        if rows and rows[0].get("ExecStopTime", "0001").startswith(("1", "2")):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"job {guid} did not finish in {timeout} s")

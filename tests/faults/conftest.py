"""The fleet under fault: web (gunicorn), two prefork Celery workers and a scheduler on a fresh
PostgreSQL database and Redis, each started as gateway/fleet.py starts it, with a short
execution lease so a dead worker's run resumes within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests

from tests import services
from tests.faults.proxy import TcpProxy
from tests.processes import ROOT, fleet_command, free_port, gateway_env, manage, wait_for_http

LEASE_SECONDS = 3.0


def conninfo(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


@dataclass
class Fleet:
    base: str
    env: dict[str, str]
    database: str
    log_dir: Path
    auth: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stack: ExitStack = field(default_factory=ExitStack)

    # -- processes ---------------------------------------------------------------------------

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.stack.callback(log.close)
        # Its own session, so the whole worker (main process and pool children) can be
        # killed at once as a container stop would.
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        self.stack.callback(self._stop, process)

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> None:
        # The documented worker (prefork pool): one child, so killing it kills the job's run.
        self.start(name, fleet_command("worker", "-c", "1", "--without-gossip"), env)

    @staticmethod
    def _stop(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    # -- the API -----------------------------------------------------------------------------

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.base}{path}", headers=self.auth, timeout=30, **kwargs)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base}{path}", headers=self.auth, timeout=30)

    def set_connection(self, key: str, url: str) -> None:
        manage(
            self.env, "setconnection", key, "--system", "PostgreSQL", "--type", "DB",
            "--value", url,
        )  # fmt: skip

    def create_direct_job(self, key: str, source: str, target: str, table: str) -> str:
        job = {
            "JobReader": {
                "JobKey": key,
                "SqlRead": f"SELECT id, name, qty FROM {table}",
                "Path": f"faults/{key}",
                "UpsertColumns": "id",
                "ConnectionString": source,
                "SyncStrategy": "Full",
                "Active": True,
                "JsonData": {"DirectWriter": f"__{key}"},
            },
            "JobWriter": {
                "JobKey": f"__{key}",
                "ConnectionString": target,
                "TargetObject": table,
                "UpsertColumns": "id",
                "Active": True,
                "Options": {"BatchCount": 5000},
            },
        }
        response = self.post("/job", json=job)
        assert response.status_code == 200, response.text
        return next(r["Guid"] for r in self.get("/jobs/summary").json() if r["JobKey"] == key)

    # -- the gateway's database --------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(conninfo(self.database), autocommit=True) as db:
            return db.execute(sql, params).fetchall()

    def wait_for(
        self, what: str, check: Callable[[], Any], timeout: float = 120, every: float = 0.05
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(every)
        raise AssertionError(f"{what}: not within {timeout} s\n" + self._logs())

    def _logs(self) -> str:
        return "\n".join(
            f"--- {name}.log (tail)\n" + self.log(name)[-3000:] for name in self.processes
        )


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    broker = services.redis_url(db=0)
    suffix = uuid.uuid4().hex[:8]
    with services.postgres_database() as database, ExitStack() as stack:
        port = free_port()
        env = gateway_env(
            tmp_path / "var",
            DATABASE_URL=database.replace("postgresql+psycopg://", "postgres://"),
            CELERY_BROKER_URL=broker,
            CELERY_RESULT_BACKEND=broker,
            CELERY_TASK_DEFAULT_QUEUE=f"faults_{suffix}",
            DATAFLUX_QUEUE=f"faults_flows_{suffix}",
            DJANGO_SECRET_KEY="faults-test-secret",
            GATEWAY_EXECUTION_LEASE_SECONDS=str(LEASE_SECONDS),
            GATEWAY_SCHEDULER_INTERVAL="0.5",
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(port),
        )
        manage(env, "migrate", "--noinput")
        key = manage(env, "createaccesskey", "faults").strip().splitlines()[-1]
        logs = tmp_path / "logs"
        logs.mkdir()
        fleet = Fleet(
            base=f"http://127.0.0.1:{port}",
            env=env,
            database=database,
            log_dir=logs,
            auth={"Authorization": f"SharedKey {key}"},
        )
        stack.enter_context(fleet.stack)
        yield fleet
        client = redis.Redis.from_url(broker)
        client.delete(env["CELERY_TASK_DEFAULT_QUEUE"], env["DATAFLUX_QUEUE"])


def start_fleet(
    fleet: Fleet, *, workers: int = 2, broker_env: dict[str, str] | None = None
) -> None:
    """Web, `workers` workers and the scheduler; `broker_env` overrides the workers' and web's
    environment (a broker behind a proxy)."""
    env = {**fleet.env, **(broker_env or {})}
    fleet.start("web", fleet_command("web"), env)
    for n in range(1, workers + 1):
        fleet.start_worker(f"worker{n}", env)
    fleet.start("scheduler", [sys.executable, "manage.py", "runscheduler"], env)
    wait_for_http(f"{fleet.base}/version")


@pytest.fixture
def source_and_target() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases, the source seeded with ROWS rows of `items`."""
    with services.postgres_database() as source, services.postgres_database() as target:
        with psycopg.connect(conninfo(source), autocommit=True) as db:
            db.execute("CREATE TABLE items (id integer PRIMARY KEY, name text, qty integer)")
            db.execute(
                "INSERT INTO items SELECT n, 'item ' || n, n %% 97 FROM generate_series(1, %s) n",
                (ROWS,),
            )
        yield source, target


ROWS = 200_000


def table_digest(url: str, table: str = "items") -> tuple[int, int, str]:
    """Row count, distinct keys and an order-independent digest of the rows."""
    with psycopg.connect(conninfo(url), autocommit=True) as db:
        exists = db.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if not exists or exists[0] is None:
            return (0, 0, "")
        row = db.execute(
            f"SELECT count(*), count(DISTINCT id), "
            f"coalesce(md5(string_agg(md5(t::text), '' ORDER BY id)), '') FROM {table} t"
        ).fetchone()
        assert row is not None
        return (row[0], row[1], row[2])


__all__ = ["LEASE_SECONDS", "ROWS", "Fleet", "TcpProxy", "start_fleet", "table_digest"]

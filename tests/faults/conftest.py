"""The fleet under fault: web (gunicorn), two prefork Celery workers and a scheduler on a fresh
PostgreSQL database and Redis, each started as gateway/fleet.py starts it, with a short
execution lease so a dead worker's run resumes within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
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
# Redis gives back a message a dead worker had received (not acknowledged) after this, and
# workers look for such messages every RESTORE_SECONDS (settings: 60 s and 5 s).
VISIBILITY_SECONDS = 10
RESTORE_SECONDS = 1


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
        # The test is over: a clean shutdown is not what it checks, and a warm one waits for
        # runs and reconnections, so the whole session goes at once.
        with suppress(ProcessLookupError):
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

    # -- a run and the worker running it ------------------------------------------------------

    def run_of(self, job_guid: str) -> str:
        """The guid of the job's (first) run, once it exists."""
        rows = self.wait_for(
            "the run started",
            lambda: self.query("SELECT guid FROM jobs_execution WHERE job_guid = %s", job_guid),
        )
        return str(rows[0][0])

    def applying(self, run: str) -> tuple[str, int] | None:
        """(worker, rows written so far) of the run's writer once it has written rows."""
        rows = self.query(
            "SELECT worker, record_count FROM jobs_execution WHERE guid = %s "
            "AND listener_type = 'writer' AND status = 'running' AND record_count > 0",
            run,
        )
        return rows[0] if rows else None

    def start_applying(self, source: str, target: str) -> tuple[str, str, str, int]:
        """Start the fleet, post the `items` direct job, start it and wait for its writer to
        have written rows: (job guid, run guid, the worker applying, rows written)."""
        start_fleet(self, connections={"src": source, "dst": target})
        job = self.create_direct_job("items", "src", "dst", "items")
        assert self.post(f"/job/start?guid={job}").text == "OK"
        run = self.run_of(job)
        worker, written = self.wait_for("the writer applying", lambda: self.applying(run))
        return job, run, worker, written

    def worker_process(self, worker: str) -> str:
        """The name of the worker process (main process or pool child) a run's `worker` is."""
        pid = int(worker.rsplit(":", 1)[1])
        return next(
            name for name, p in self.processes.items() if name.startswith("worker") and (
                p.pid == pid or str(pid) in children(p.pid).split()
            )
        )  # fmt: skip

    def taken_over(self, run: str, worker: str, timeout: float = 60) -> None:
        """Wait for the run's reader to be running in another worker than `worker`."""
        self.wait_for(
            "the run taken over",
            lambda: self.query(
                "SELECT 1 FROM jobs_execution WHERE guid = %s AND listener_type = 'reader' "
                "AND status = 'running' AND worker <> %s",
                run,
                worker,
            ),
            timeout=timeout,
        )

    def finished(self, run: str) -> tuple[str, int, str] | None:
        """(status, takeovers, error) of the run's reader once it has finished."""
        rows = self.query(
            "SELECT status, takeovers, error_message FROM jobs_execution "
            "WHERE guid = %s AND listener_type = 'reader' AND finished_at IS NOT NULL",
            run,
        )
        return rows[0] if rows else None

    def _logs(self) -> str:
        return "\n".join(
            f"--- {name}.log (tail)\n" + self.log(name)[-3000:] for name in self.processes
        )


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database migrated once; each test's gateway database is a copy of it."""
    with services.postgres_database() as database:
        env = gateway_env(
            tmp_path_factory.mktemp("template"),
            DATABASE_URL=database.replace("postgresql+psycopg://", "postgres://"),
            DJANGO_SECRET_KEY="faults-test-secret",
        )
        manage(env, "migrate", "--noinput")
        yield database.rsplit("/", 1)[1]


@contextmanager
def copy_of(template: str) -> Iterator[str]:
    admin = (
        f"host={services.POSTGRES_HOST} port={services.POSTGRES_PORT} "
        f"user={services.POSTGRES_USER} dbname=postgres"
    )
    name = services.unique_name("gwfault")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield (
            f"postgresql+psycopg://{services.POSTGRES_USER}@{services.POSTGRES_HOST}:"
            f"{services.POSTGRES_PORT}/{name}"
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fleet(tmp_path: Path, migrated_database: str) -> Iterator[Fleet]:
    broker = services.redis_url(db=0)
    suffix = uuid.uuid4().hex[:8]
    with copy_of(migrated_database) as database, ExitStack() as stack:
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
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_SECONDS),
            CELERY_RESTORE_INTERVAL=str(RESTORE_SECONDS),
            GATEWAY_SCHEDULER_INTERVAL="0.5",
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(port),
        )
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
    fleet: Fleet,
    *,
    workers: int = 2,
    broker_env: dict[str, str] | None = None,
    connections: dict[str, str] | None = None,
) -> None:
    """Web, `workers` workers and the scheduler; `broker_env` overrides the workers' and web's
    environment (a broker behind a proxy). `connections` (key → URL) are stored while the
    processes boot."""
    env = {**fleet.env, **(broker_env or {})}
    fleet.start("web", fleet_command("web"), env)
    for n in range(1, workers + 1):
        fleet.start_worker(f"worker{n}", env)
    fleet.start("scheduler", fleet_command("scheduler"), env)
    for key, url in (connections or {}).items():
        fleet.set_connection(key, url)
    wait_for_http(f"{fleet.base}/version")


@pytest.fixture
def source_and_target() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases: the source seeded with ROWS rows of `items`, the target
    with an empty `items` that is slow to write."""
    with services.postgres_database() as source, services.postgres_database() as target:
        with psycopg.connect(conninfo(source), autocommit=True) as db:
            db.execute("CREATE TABLE items (id integer PRIMARY KEY, name text, qty integer)")
            db.execute(
                "INSERT INTO items SELECT n, 'item ' || n, n %% 97 FROM generate_series(1, %s) n",
                (ROWS,),
            )
        with psycopg.connect(conninfo(target), autocommit=True) as db:
            # A target that takes its time (50 ms every 1,000th row: some 5 s for ROWS, in
            # sleeps long enough to be kept on a loaded machine): however fast the machine,
            # a fault lands while the writer is applying, as in the field.
            db.execute("CREATE TABLE items (id integer PRIMARY KEY, name text, qty integer)")
            db.execute(
                "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN IF NEW.id % 1000 = 0 THEN PERFORM pg_sleep(0.05); END IF; "
                "RETURN NEW; END $$"
            )
            db.execute(
                "CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON items "
                "FOR EACH ROW EXECUTE FUNCTION slow_row()"
            )
        yield source, target


ROWS = 100_000


def children(pid: int) -> str:
    """The pids of a process's children, space-separated ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return handle.read()
    except OSError:
        return ""


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


__all__ = [
    "LEASE_SECONDS",
    "RESTORE_SECONDS",
    "ROWS",
    "VISIBILITY_SECONDS",
    "Fleet",
    "TcpProxy",
    "children",
    "start_fleet",
    "table_digest",
]

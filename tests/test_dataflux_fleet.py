"""DataFlux on the fleet: gunicorn web processes, a Celery worker on the "flows" queue, Redis.

The flow runs in the worker; its engine is visible (and can be unloaded) from any web process.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection

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

# Seconds: the recorder's writer process starts Django first, which a loaded machine took
# more than flush()'s default 10 s to do; a real hang still fails.
RECORDER_WAIT = 120.0
BASE = "/SASDataMgmtRTDataJob/rest"
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
METADATA = "application/vnd.sas.datamgmt.jobflow.metadata+json"
GENDER = base64.b64encode(b"Determine_Gender.ddf").decode()


@pytest.mark.slow
@pytest.mark.redis
def test_flows_run_in_a_fleet_worker_and_engines_are_shared(tmp_path: Path) -> None:
    # given a fleet: Redis broker, a worker on its own flows queue, two web processes
    redis = services.redis_url(db=0)
    tag = uuid.uuid4().hex[:8]
    env = gateway_env(
        tmp_path / "var",
        CELERY_BROKER_URL=redis,
        CELERY_RESULT_BACKEND=redis,
        CELERY_TASK_DEFAULT_QUEUE=f"fleet-gw-{tag}",
        DATAFLUX_QUEUE=f"fleet-flows-{tag}",
        DJANGO_SECRET_KEY="fleet-test-secret",
        DJANGO_SUPERUSER_PASSWORD="fleet-password",
        GATEWAY_LOG_LEVEL="WARNING",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "createsuperuser", "--noinput", "--username", "ops", "--email", "o@example.com")
    port = free_port()
    url = f"http://127.0.0.1:{port}{BASE}"
    session = requests.Session()
    session.auth = ("ops", "fleet-password")
    with (
        started(
            celery_worker(env["DATAFLUX_QUEUE"], f"flows-{uuid.uuid4().hex[:6]}@%h", "WARNING"),
            env,
            tmp_path / "worker.log",
        ),
        started(gunicorn(port), env, tmp_path / "web.log"),
    ):
        wait_for_http(f"{url}/")
        xml = (EXAMPLES / "Determine_Gender.ddf").read_bytes()
        body = {"name": "Determine_Gender.ddf", "content": base64.b64encode(xml).decode()}
        assert session.post(f"{url}/jobFlowDefns", json=body, timeout=30).status_code == 200
        inputs = {"dataTable": {"metadata": [{"name": "Name"}], "data": [["anna"], ["john"]]}}
        # when it runs twice
        answers = [
            session.post(
                f"{url}/jobFlowDefns/{GENDER}",
                json={"inputs": inputs},
                headers={"Accept": METADATA},
                timeout=60,
            )
            for _ in range(2)
        ]
        # then both ran in the worker, on one engine every web process can see
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"]["dataTable"]["data"] == [["Anna", "F"], ["John", "M"]]
        # and a bad input is answered with the worker's error, as embedded runs answer it
        bad = {"dataTable": {"metadata": [{"name": "Name"}], "data": [["anna", "extra"]]}}
        refused = session.post(
            f"{url}/jobFlowDefns/{GENDER}",
            json={"inputs": bad},
            headers={"Accept": METADATA},
            timeout=60,
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["errorCode"] == 11002
        listings = [session.get(f"{url}/engines", timeout=30).json() for _ in range(4)]
        assert {listing["count"] for listing in listings} == {1}
        engine_id = listings[0]["items"][0]["id"]
        # (the worker's recorder writes the runs a moment after they answered)
        runs, logs = _recorded(tmp_path / "var" / "gateway.sqlite3", count=3)
        assert [(status, user) for status, _, user in runs] == [("succeeded", "ops")] * 2 + [
            ("failed", "ops")
        ]
        assert len({worker_name for _, worker_name, _ in runs}) == 1
        assert len({execution for execution, _, _ in logs}) == 3
        assert "row 1" in logs[-1][2]
        # and ids holding "/" work through a real server, raw and percent-encoded
        noel = base64.b64encode("Noël.ddf".encode()).decode()
        body = {"name": "Noël.ddf", "content": base64.b64encode(b"<flow/>").decode()}
        assert "/" in noel
        assert session.post(f"{url}/jobFlowDefns", json=body, timeout=30).json()["id"] == noel
        for form in (noel, noel.replace("/", "%2F")):
            answer = session.get(f"{url}/jobFlowDefns/{form}/metadata", timeout=30)
            assert answer.json()["name"] == "Noël.ddf"
        # and unloading it from a web process removes it
        assert session.delete(f"{url}/engines/{engine_id}", timeout=30).status_code == 204
        assert session.get(f"{url}/engines", timeout=30).json()["count"] == 0


def _recorded(database: Path, count: int) -> tuple[list, list]:
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(database) as db:
            runs = db.execute(
                "SELECT status, worker, requested_by FROM jobs_execution ORDER BY id"
            ).fetchall()
            logs = db.execute(
                "SELECT execution_id, level, message FROM jobs_logentry ORDER BY id"
            ).fetchall()
        if len(runs) >= count or time.monotonic() > deadline:
            return runs, logs
        time.sleep(0.05)


# -- the hand-off, in this process: the web side and the task, with a real Redis -------------


def _stored_flow() -> Any:
    from jobs.flows.runtime.definitions import create_flow, flow_for_run

    create_flow("Determine_Gender.ddf", (EXAMPLES / "Determine_Gender.ddf").read_bytes())
    return flow_for_run("Determine_Gender.ddf")


@pytest.fixture
def fleet_settings(settings, monkeypatch):
    """The web side's settings on a fleet; the pool stays this process's (the worker's)."""
    from jobs.flows.runtime.engines import reset_pool

    settings.CELERY_RESULT_BACKEND = services.redis_url(db=0)
    settings.DATAFLUX_QUEUE_WAIT_SECONDS = 5.0
    reset_pool()
    yield settings
    reset_pool()


def _worker_thread(monkeypatch, delay: float = 0.0) -> list[dict]:
    """Deliver each queued request to the task in a thread, as a worker would."""
    from jobs.flows.runtime import fleet

    sent: list[dict] = []

    def deliver(args: tuple, queue: str, **options: Any) -> None:
        sent.append({**args[0], "shown as": options.get("argsrepr")})

        def work() -> None:
            time.sleep(delay)
            try:
                fleet.run_flow_request(args[0])
            finally:
                connection.close()

        threading.Thread(target=work).start()

    monkeypatch.setattr(fleet.run_flow_request, "apply_async", deliver)
    return sent


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_fleet_run_is_answered_through_redis_and_recorded_after(
    fleet_settings, monkeypatch
) -> None:
    # given a stored flow and a worker taking the flows queue
    from jobs.flows.runtime import recorder
    from jobs.flows.runtime.fleet import run_on_fleet
    from jobs.models import Execution

    job = _stored_flow()
    sent = _worker_thread(monkeypatch)
    inputs = {"dataTable": {"metadata": [{"name": "Name"}], "data": [["anna"], ["john"]]}}
    # when a web thread runs it on the fleet
    outputs = run_on_fleet(job, inputs, "ops", 30.0)
    # then the worker's outputs come back, and the message carried the flow as found
    assert outputs["dataTable"]["data"] == [["Anna", "F"], ["John", "M"]]
    (request,) = sent
    assert request["flow"] == [job.pk, job.guid, job.job_key, job.updated_at.isoformat()]
    # and the client's data stays out of what logs and monitors show of the message
    assert "anna" not in request["shown as"] and request["guid"] in request["shown as"]
    # and the run is recorded under the request's guid once the recorder writes
    assert recorder.flush(RECORDER_WAIT)
    run = Execution.objects.get(guid=request["guid"])
    assert (run.status, run.requested_by, run.record_count) == ("succeeded", "ops", 2)
    assert run.created_on <= run.started_at <= run.finished_at
    assert run.log_entries.count() == 1


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_error_is_raised_in_the_web_as_the_api_names_it(
    fleet_settings, monkeypatch
) -> None:
    from jobs.flows.errors import InputError
    from jobs.flows.runtime import recorder
    from jobs.flows.runtime.fleet import run_on_fleet
    from jobs.models import Execution

    job = _stored_flow()
    _worker_thread(monkeypatch)
    bad = {"dataTable": {"metadata": [{"name": "Name"}], "data": [["anna", "extra"]]}}
    with pytest.raises(InputError, match="row 1"):
        run_on_fleet(job, bad, "ops", 30.0)
    assert recorder.flush(RECORDER_WAIT)
    run = Execution.objects.get()
    assert run.status == "failed"
    assert run.result["error"]["kind"] == "input"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_request_no_worker_took_in_time_is_refused_not_run(fleet_settings, monkeypatch) -> None:
    # given workers so busy that the request waits past DATAFLUX_QUEUE_WAIT_SECONDS
    from jobs.flows.errors import EngineBusy
    from jobs.flows.runtime import recorder
    from jobs.flows.runtime.fleet import run_on_fleet
    from jobs.models import Execution

    fleet_settings.DATAFLUX_QUEUE_WAIT_SECONDS = 0.2
    job = _stored_flow()
    _worker_thread(monkeypatch, delay=0.5)
    # when a worker finally takes it, it answers "busy" at once
    with pytest.raises(EngineBusy, match="No worker took the run"):
        run_on_fleet(job, None, "ops", 30.0)
    # and records it as failed, never started, on no worker
    assert recorder.flush(RECORDER_WAIT)
    run = Execution.objects.get()
    assert (run.status, run.started_at, run.worker) == ("failed", None, "")
    assert run.result["error"]["kind"] == "busy"
    from jobs.flows.runtime.engines import pool

    assert pool().compiles == 0


@pytest.mark.django_db(transaction=True)
def test_without_redis_results_the_web_polls_the_recorded_run(settings, monkeypatch) -> None:
    # given a fleet whose result backend is not Redis
    from jobs.flows.runtime.engines import reset_pool
    from jobs.flows.runtime.fleet import run_on_fleet

    settings.CELERY_RESULT_BACKEND = "cache+memory://"
    reset_pool()
    job = _stored_flow()
    sent = _worker_thread(monkeypatch)
    inputs = {"dataTable": {"metadata": [{"name": "Name"}], "data": [["mary"]]}}
    # when it runs, the worker answers by recording the run, which the web finds by guid
    outputs = run_on_fleet(job, inputs, "ops", 30.0)
    assert outputs["dataTable"]["data"] == [["Mary", "F"]]
    assert sent[0]["reply"] is False
    reset_pool()


@pytest.mark.django_db(transaction=True)
def test_a_run_no_worker_answers_is_given_up_and_recorded(settings, monkeypatch) -> None:
    # given no worker at all on the flows queue
    from jobs.flows.errors import RunTimeout
    from jobs.flows.runtime import fleet, recorder
    from jobs.models import Execution

    settings.CELERY_RESULT_BACKEND = "cache+memory://"
    settings.DATAFLUX_QUEUE_WAIT_SECONDS = 0.1
    monkeypatch.setattr(fleet, "GRACE_SECONDS", 0.1)
    monkeypatch.setattr(fleet.run_flow_request, "apply_async", lambda *args, **options: None)
    job = _stored_flow()
    # when a web thread has waited as long as any worker could take
    with pytest.raises(RunTimeout, match="No worker answered"):
        fleet.run_on_fleet(job, None, "ops", 0.1)
    # then the run is recorded as failed, never started
    assert recorder.flush(RECORDER_WAIT)
    run = Execution.objects.get()
    assert (run.status, run.started_at, run.requested_by) == ("failed", None, "ops")
    assert run.result["error"]["kind"] == "timeout"

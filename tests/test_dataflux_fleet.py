"""DataFlux on the fleet: gunicorn web processes, a Celery worker on the "flows" queue, Redis.

The flow runs in the worker; its engine is visible (and can be unloaded) from any web process.
"""

from __future__ import annotations

import base64
import sqlite3
import uuid
from pathlib import Path

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

pytestmark = [pytest.mark.slow, pytest.mark.redis]

BASE = "/SASDataMgmtRTDataJob/rest"
EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
METADATA = "application/vnd.sas.datamgmt.jobflow.metadata+json"
GENDER = base64.b64encode(b"Determine_Gender.ddf").decode()


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
        with sqlite3.connect(tmp_path / "var" / "gateway.sqlite3") as db:
            runs = db.execute(
                "SELECT status, worker, requested_by FROM jobs_execution ORDER BY id"
            ).fetchall()
            logs = db.execute(
                "SELECT execution_id, level, message FROM jobs_logentry ORDER BY id"
            ).fetchall()
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


@pytest.mark.django_db
def test_a_run_the_web_gave_up_on_is_not_started_by_a_worker() -> None:
    # given a queued flow run whose web request stopped waiting for it
    from celery.exceptions import Ignore

    from jobs.flows.fleet import run_flow_execution
    from jobs.models import Execution, ExecutionStatus, Job, JobKind

    xml = (EXAMPLES / "Determine_Gender.ddf").read_text()
    job = Job.objects.create(kind=JobKind.FLOW, job_key="Determine_Gender.ddf", content=xml)
    execution = Execution.objects.create(
        job=job,
        job_guid=job.guid,
        job_key=job.job_key,
        listener_type=JobKind.FLOW,
        options={"inputs": {}},
        cancel_requested=True,
    )
    # when a worker receives it
    with pytest.raises(Ignore):
        run_flow_execution(execution.pk)
    # then it ends cancelled without having run
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.CANCELLED
    assert execution.started_at is None
    assert execution.worker == ""

"""/health and /metrics: what an operator's probe and Prometheus see."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import AccessKey, Execution, ExecutionStatus, SchedulerLease
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
from tests.test_dataflux_support import basic_client, execute, fresh_state, make_user, upload


def fresh_lease(seconds: float = 15) -> None:
    SchedulerLease.objects.update_or_create(
        name="scheduler",
        defaults={"holder": "test:1:1", "expires_at": timezone.now() + timedelta(seconds=seconds)},
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_health_is_ok_with_a_worker_and_a_fresh_scheduler_lease(embedded_worker: object) -> None:
    # given
    fresh_lease()
    # when
    response = Client().get("/health")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert list(body["checks"]) == ["database", "broker", "worker", "scheduler", "disk"]
    assert all(check["ok"] for check in body["checks"].values()), body
    assert "answers, consuming gateway" in body["checks"]["worker"]["detail"]


def test_no_worker_a_stale_lease_and_a_full_disk_make_it_503(db: None) -> None:
    # given no worker running, a lease that expired a minute ago, and a free-space floor no
    # disk meets
    fresh_lease(-60)
    with override_settings(GATEWAY_HEALTH_MIN_FREE_MB=10**12, GATEWAY_HEALTH_TIMEOUT=0.2):
        # when
        response = Client().get("/health?format=text")
    # then
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    lines = response.content.decode().splitlines()
    assert lines[0] == "fail"
    assert any(line.startswith("scheduler: FAIL") and "expired" in line for line in lines)
    assert any(line.startswith("disk: FAIL") and "below" in line for line in lines)
    assert any(
        line.startswith("worker: FAIL") and "no worker consuming gateway answered" in line
        for line in lines
    )
    assert any(line.startswith("database: ok") for line in lines)


def test_plain_text_is_chosen_by_accept_too(db: None) -> None:
    fresh_lease()
    response = Client().get("/health", HTTP_ACCEPT="text/plain")
    assert response["Content-Type"].startswith("text/plain")
    assert "database: ok" in response.content.decode()


@pytest.mark.parametrize("path", ["/health", "/metrics"])
def test_a_key_is_needed_when_configured(db: None, path: str) -> None:
    _, raw = AccessKey.generate("prometheus")
    with override_settings(
        GATEWAY_HEALTH_REQUIRES_KEY=True,
        GATEWAY_METRICS_REQUIRES_KEY=True,
        GATEWAY_HEALTH_TIMEOUT=0.2,
    ):
        refused = Client().get(path)
        wrong = Client().get(path, HTTP_AUTHORIZATION="Bearer nope")
        bearer = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {raw}")
        shared = Client().get(path, HTTP_AUTHORIZATION=f"SharedKey {raw}")
    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.json()["Error"].startswith("An access key is required")
    assert bearer.status_code != 401 and shared.status_code != 401


def test_no_key_is_needed_by_default(db: None) -> None:
    assert Client().get("/metrics").status_code == 200


def _run(job: str, kind: str, status: str, seconds: float, **counters: int) -> None:
    finished = timezone.now()
    Execution.objects.create(
        job_guid=job,
        job_key=job,
        listener_type=kind,
        status=status,
        started_at=finished - timedelta(seconds=seconds),
        finished_at=finished,
        **counters,
    )


def test_metrics_count_runs_rows_durations_and_pending_work(db: None) -> None:
    # given two reader runs, a failed writer run, a writer run and one run still pending
    _run("films", "reader", ExecutionStatus.SUCCEEDED, 0.2, records_available=10)
    _run("films", "reader", ExecutionStatus.SUCCEEDED, 3, records_available=5)
    _run("films-out", "writer", ExecutionStatus.SUCCEEDED, 2, record_count=7, delete_count=2)
    _run("films-out", "writer", ExecutionStatus.FAILED, 40)
    Execution.objects.create(job_guid="x", job_key="films", listener_type="reader")
    # when
    response = Client().get("/metrics")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response.content.decode())

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    assert value("gateway_runs_total", job="films", kind="reader", outcome="succeeded") == 2
    assert value("gateway_runs_total", job="films-out", kind="writer", outcome="failed") == 1
    assert value("gateway_rows_read_total", job="films") == 15
    assert value("gateway_rows_written_total", job="films-out", kind="writer") == 7
    assert value("gateway_rows_deleted_total", job="films-out") == 2
    reader = {"job": "films", "kind": "reader"}
    assert value("gateway_run_duration_seconds_bucket", le="0.25", **reader) == 1
    assert value("gateway_run_duration_seconds_bucket", le="5.0", **reader) == 2
    assert value("gateway_run_duration_seconds_count", **reader) == 2
    assert value("gateway_run_duration_seconds_sum", **reader) == pytest.approx(3.2, abs=0.01)
    writer = {"job": "films-out", "kind": "writer"}
    assert value("gateway_run_duration_seconds_bucket", le="15.0", **writer) == 1
    assert value("gateway_run_duration_seconds_bucket", le="60.0", **writer) == 2
    assert value("gateway_executions", status="pending") == 1
    assert value("gateway_executions", status="running") == 0
    assert ("gateway_queue_depth", (("queue", "gateway"),)) in found


def test_metrics_count_requests_by_route_and_status(db: None, datazen: Client) -> None:
    # given one answered and one refused DataZen call
    datazen.get("/version")
    Client().get("/version")
    # when
    found = samples(Client().get("/metrics").content.decode())
    # then
    ok = (
        "gateway_http_requests_total",
        (("endpoint", "/version"), ("method", "GET"), ("status", "200")),
    )
    refused = (
        "gateway_http_requests_total",
        (("endpoint", "/version"), ("method", "GET"), ("status", "401")),
    )
    assert found[ok] >= 1 and found[refused] >= 1


def test_metrics_show_the_flow_engines_in_use(db: None) -> None:
    # given a flow that ran once, so an engine holds it
    fresh_state()
    make_user("ann")
    client = basic_client("ann")
    upload(client, "dataSvcTypes.ddf")
    columns = [{"name": "Full Name", "type": "string"}, {"name": "Age", "type": "integer"}]
    inputs = {"dataTable": {"metadata": columns, "data": [["Ann", 3]]}}
    assert execute(client, "ZGF0YVN2Y1R5cGVzLmRkZg==", inputs).status_code == 200
    # when
    found = samples(Client().get("/metrics").content.decode())
    # then
    key = ("gateway_flow_engines", (("flow", "dataSvcTypes.ddf"), ("state", "idle")))
    assert found[key] == 1
    fresh_state()


FINISHED_RUN = """
from datetime import timedelta
from django.utils import timezone
from jobs.models import Execution
now = timezone.now()
Execution.objects.create(job_guid="g", job_key="films", listener_type="reader",
    status="succeeded", started_at=now - timedelta(seconds=2.5), finished_at=now,
    records_available=42)
"""


UNMATCHED_404 = (
    "gateway_http_requests_total",
    (("endpoint", "unmatched"), ("method", "GET"), ("status", "404")),
)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_the_fleet_web_process_reports_its_worker_scheduler_and_queues(tmp_path: Path) -> None:
    redis = services.redis_url(db=0)
    queue = f"health_{uuid.uuid4().hex[:8]}"
    with services.postgres_database() as database:
        # given a fleet: gunicorn, one Celery worker and the scheduler on PostgreSQL and Redis
        env = gateway_env(
            tmp_path / "var",
            DATABASE_URL=database.replace("postgresql+psycopg://", "postgres://"),
            CELERY_BROKER_URL=redis,
            CELERY_RESULT_BACKEND=redis,
            CELERY_TASK_DEFAULT_QUEUE=queue,
            DJANGO_SECRET_KEY="fleet-health-secret",
        )
        manage(env, "migrate", "--noinput")
        # and a finished 2.5-second run, so the durations are computed by PostgreSQL
        manage(env, "shell", "-c", FINISHED_RUN)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        worker = f"{queue}@%h"
        with (
            started(gunicorn(port), env, tmp_path / "web.log"),
            started(celery_worker(queue, worker), env, tmp_path / "worker.log"),
            started([sys.executable, "manage.py", "runscheduler"], env, tmp_path / "sched.log"),
        ):
            wait_for_http(f"{base}/metrics")
            # when (the worker and the scheduler take a moment to come up)
            deadline = time.monotonic() + 60
            while True:
                health = requests.get(f"{base}/health", timeout=30)
                if health.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            metrics = requests.get(f"{base}/metrics", timeout=30).text
            # and requests answered by gunicorn's two worker processes, counted once each
            for _ in range(20):
                requests.get(f"{base}/no-such-path", timeout=30)
            unmatched = [
                samples(requests.get(f"{base}/metrics", timeout=30).text).get(UNMATCHED_404)
                for _ in range(6)
            ]
            pids = {
                line.rsplit(":", 1)[1].strip()
                for line in (tmp_path / "web.log").read_text().splitlines()
                if "Booting worker" in line
            }
    # then: every scrape, whichever worker answers it, adds up both workers' counts
    assert len(pids) == 2, pids
    assert unmatched == [20.0] * 6
    assert health.status_code == 200, health.text
    checks = health.json()["checks"]
    assert queue in checks["worker"]["detail"]
    assert checks["database"]["detail"] == "postgresql answers"
    assert f'gateway_queue_depth{{queue="{queue}"}} 0.0' in metrics
    reader = 'job="films",kind="reader"'
    assert f'gateway_run_duration_seconds_bucket{{{reader},le="1.0"}} 0.0' in metrics
    assert f'gateway_run_duration_seconds_bucket{{{reader},le="5.0"}} 1.0' in metrics
    assert f"gateway_run_duration_seconds_sum{{{reader}}} 2.5" in metrics
    assert 'gateway_rows_read_total{job="films"} 42.0' in metrics

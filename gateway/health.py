"""GET /health: is this gateway able to do its work? One line (or JSON member) per check.

database  a query on the gateway's own database answers
broker    the Celery broker accepts a connection (embedded: the in-memory transport)
worker    a Celery worker consuming the gateway's queue answers (embedded: the worker thread)
scheduler the scheduler's lease was renewed recently (a leader is ticking)
disk      the data directory has at least GATEWAY_HEALTH_MIN_FREE_MB free

200 when every check passes, 503 otherwise; JSON by default or with `?format=json`, plain text
with `?format=text` or `Accept: text/plain`. Whether a key is needed: gateway/access_keys.py.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from gateway.access_keys import key_required_response
from gateway.celery import app
from jobs.models import SchedulerLease

# The scheduler's lease row (jobs' scheduler names it so; see docs/schedules.md).
SCHEDULER_LEASE = "scheduler"


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return f"{connection.vendor} answers"


def check_broker() -> str:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.GATEWAY_HEALTH_TIMEOUT)
        return f"{conn.transport_cls} broker reachable"


class _Answered(Exception):
    """Raised from the reply callback to stop waiting once a worker of ours has answered."""


def check_worker() -> str:
    """A worker consuming the gateway's own queue answers (not any worker of a shared broker)."""
    wanted = {settings.CELERY_TASK_DEFAULT_QUEUE}
    answered: list[str] = []

    def on_reply(reply: dict[str, Any]) -> None:
        for name, queues in reply.items():
            if any(isinstance(q, dict) and q.get("name") in wanted for q in queues or []):
                answered.append(name)
                raise _Answered

    try:
        app.control.broadcast(
            "active_queues",
            reply=True,
            timeout=settings.GATEWAY_HEALTH_TIMEOUT,
            callback=on_reply,
        )
    except _Answered:
        return f"{answered[0]} answers, consuming {', '.join(sorted(wanted))}"
    raise RuntimeError(
        f"no worker consuming {', '.join(sorted(wanted))} answered within "
        f"{settings.GATEWAY_HEALTH_TIMEOUT} s"
    )


def check_scheduler() -> str:
    lease = SchedulerLease.objects.filter(name=SCHEDULER_LEASE).first()
    if lease is None:
        raise RuntimeError("no scheduler has ever taken the lease")
    now = timezone.now()
    # A live leader renews every tick; past its expiry nobody is ticking.
    if lease.expires_at < now:
        stale = (now - lease.expires_at).total_seconds()
        raise RuntimeError(f"lease of {lease.holder} expired {stale:.0f} s ago")
    left = (lease.expires_at - now) / timedelta(seconds=1)
    return f"leader {lease.holder}, lease valid {left:.0f} s more"


def check_disk() -> str:
    usage = shutil.disk_usage(settings.DATA_DIR)
    free_mb = usage.free // (1024 * 1024)
    floor = settings.GATEWAY_HEALTH_MIN_FREE_MB
    if free_mb < floor:
        raise RuntimeError(f"{free_mb} MB free in {settings.DATA_DIR}, below {floor} MB")
    return f"{free_mb} MB free in {settings.DATA_DIR}"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "worker": check_worker,
    "scheduler": check_scheduler,
    "disk": check_disk,
}


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as exc:  # any failure is the check's answer, not the endpoint's
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results.append(CheckResult(name, ok, detail, round(time.perf_counter() - started, 4)))
    return results


def health(request: HttpRequest) -> HttpResponse:
    refused = key_required_response(request, settings.GATEWAY_HEALTH_REQUIRES_KEY)
    if refused is not None:
        return refused
    results = run_checks()
    healthy = all(r.ok for r in results)
    status = 200 if healthy else 503
    wanted = request.GET.get("format", "")
    if wanted == "text" or (not wanted and "text/plain" in request.headers.get("Accept", "")):
        lines = [f"{'ok' if healthy else 'fail'}"]
        lines += [
            f"{r.name}: {'ok' if r.ok else 'FAIL'} ({r.seconds * 1000:.0f} ms) {r.detail}"
            for r in results
        ]
        return HttpResponse(
            "\n".join(lines) + "\n", status=status, content_type="text/plain; charset=utf-8"
        )
    body = {
        "status": "ok" if healthy else "fail",
        "checks": {r.name: {"ok": r.ok, "detail": r.detail, "seconds": r.seconds} for r in results},
    }
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")

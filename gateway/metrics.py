"""GET /metrics in the Prometheus text format.

Requests are counted as they are answered (RequestMetricsMiddleware), by route pattern so the
label set stays bounded. Everything about runs is read from the database when Prometheus
scrapes (RunCollector), not counted by the engine: the figures are the same from every web
process, survive restarts, and the engine stays free of metrics code.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, F, FloatField, Func, Q, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.access_keys import key_required_response
from gateway.celery import app
from jobs.models import FINISHED_STATUSES as FINISHED
from jobs.models import Execution, ExecutionStatus

logger = logging.getLogger(__name__)

# `*_created` series (when a counter was first seen) only double the output.
disable_created_metrics()
# The gateway's own registry: not prometheus_client's default one, whose process and platform
# collectors would mix into the figures of the multi-process mode.
REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "gateway_http_requests",
    "HTTP requests answered, by route and status",
    ["endpoint", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to answer an HTTP request, by route",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
# Run durations in seconds: a real-time flow run takes milliseconds, a sync job minutes.
RUN_BUCKETS = (0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600)


def endpoint_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return f"/{match.route}" if match is not None and match.route else "unmatched"


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        endpoint = endpoint_of(request)
        REQUESTS.labels(endpoint, request.method or "", str(response.status_code)).inc()
        REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
        return response


class RunSeconds(Func):
    """finished_at - started_at in seconds, computed by the database itself.

    Django's DurationField arithmetic runs a Python function per row on SQLite: with ten
    histogram buckets that was 8 s per scrape for 20,000 runs; this is native SQL everywhere.
    """

    output_field = FloatField()

    def __init__(self) -> None:
        super().__init__(F("finished_at"), F("started_at"))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM (%(expressions)s))",
            arg_joiner=" - ",
            **extra,
        )

    def as_mysql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        expressions = list(reversed(self.get_source_expressions()))
        clone = self.copy()
        clone.set_source_expressions(expressions)
        return clone.as_sql(
            compiler,
            connection,
            template="(TIMESTAMPDIFF(MICROSECOND, %(expressions)s) / 1000000.0)",
            arg_joiner=", ",
            **extra,
        )


class RunCollector(Collector):
    """Runs, rows, durations, pending work and flow engines, from the database at scrape time."""

    def collect(self) -> Iterator[Metric]:
        yield from self._runs()
        yield from self._durations()
        yield from self._work()
        yield from self._engines()

    def _runs(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "gateway_runs",
            "Runs finished, by job, kind and outcome",
            labels=["job", "kind", "outcome"],
        )
        read = CounterMetricFamily(
            "gateway_rows_read", "Rows read from sources by job readers", labels=["job"]
        )
        written = CounterMetricFamily(
            "gateway_rows_written",
            "Rows upserted by job writers, and output rows of job flows",
            labels=["job", "kind"],
        )
        deleted = CounterMetricFamily(
            "gateway_rows_deleted", "Rows deleted by job writers", labels=["job"]
        )
        totals: dict[str, dict[tuple[str, ...], int]] = {"read": {}, "written": {}, "deleted": {}}

        def add(name: str, labels: tuple[str, ...], value: int | None) -> None:
            totals[name][labels] = totals[name].get(labels, 0) + (value or 0)

        grouped = (
            Execution.objects.filter(status__in=FINISHED)
            .values("job_key", "listener_type", "status")
            .annotate(
                runs=Count("id"),
                available=Sum("records_available"),
                records=Sum("record_count"),
                deletes=Sum("delete_count"),
            )
            .order_by()
        )
        for row in grouped:
            job, kind = row["job_key"], row["listener_type"]
            runs.add_metric([job, kind, row["status"]], row["runs"])
            if kind == "reader":
                add("read", (job,), row["available"])
            else:
                add("written", (job, kind), row["records"])
            if kind == "writer":
                add("deleted", (job,), row["deletes"])
        for family, name in ((read, "read"), (written, "written"), (deleted, "deleted")):
            for labels, value in totals[name].items():
                family.add_metric(list(labels), value)
        yield from (runs, read, written, deleted)

    def _durations(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "gateway_run_duration_seconds", "Durations of finished runs", labels=["job", "kind"]
        )
        duration = RunSeconds()
        buckets = {
            f"le_{i}": Count("id", filter=Q(duration__lte=bound))
            for i, bound in enumerate(RUN_BUCKETS)
        }
        grouped = (
            Execution.objects.filter(status__in=FINISHED, started_at__isnull=False)
            .exclude(finished_at=None)
            .annotate(duration=duration)
            .values("job_key", "listener_type")
            .annotate(total=Count("id"), seconds=Sum("duration"), **buckets)
            .order_by()
        )
        for group in grouped:
            row: dict[str, Any] = dict(group)
            counts = [(str(float(bound)), row[f"le_{i}"]) for i, bound in enumerate(RUN_BUCKETS)]
            family.add_metric(
                [row["job_key"], row["listener_type"]],
                [*counts, ("+Inf", row["total"])],
                float(row["seconds"] or 0),
            )
        yield family

    def _work(self) -> Iterator[Metric]:
        executions = GaugeMetricFamily(
            "gateway_executions", "Executions not finished yet, by status", labels=["status"]
        )
        open_counts = dict(
            Execution.objects.filter(status__in=(ExecutionStatus.PENDING, ExecutionStatus.RUNNING))
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING):
            executions.add_metric([status], open_counts.get(status, 0))
        yield executions
        depth = GaugeMetricFamily(
            "gateway_queue_depth", "Messages waiting in the broker, by queue", labels=["queue"]
        )
        for queue, size in queue_depths().items():
            depth.add_metric([queue], size)
        yield depth

    def _engines(self) -> Iterator[Metric]:
        # The flow compiler and its reference data load at the first scrape, not with the
        # middleware this module also provides (every web process has it).
        from jobs.flows.runtime.engines import list_engines

        family = GaugeMetricFamily(
            "gateway_flow_engines", "Loaded flow engines, busy or idle", labels=["flow", "state"]
        )
        counts: dict[tuple[str, str], int] = {}
        for info in list_engines():
            key = (info.flow_name, "busy" if info.in_use_by else "idle")
            counts[key] = counts.get(key, 0) + 1
        for (flow, state), n in sorted(counts.items()):
            family.add_metric([flow, state], n)
        yield family


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue the gateway's workers consume; {} when the broker is down."""
    queues = dict.fromkeys([settings.CELERY_TASK_DEFAULT_QUEUE, *settings.GATEWAY_EXTRA_QUEUES])
    depths: dict[str, int] = {}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.GATEWAY_HEALTH_TIMEOUT)
            channel: Any = conn.default_channel  # kombu's stubs lack queue_declare
            for queue in queues:
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # a queue nobody declared yet holds nothing
                    depths[queue] = 0
    except Exception as exc:  # the broker is down: /health says so; metrics go on without it
        logger.warning("queue depth unavailable: %s", exc)
    return depths


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several web processes (gunicorn): add up the request counters they wrote to files.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(RunCollector())
        return registry
    return REGISTRY


def metrics(request: HttpRequest, *args: Any) -> HttpResponse:
    refused = key_required_response(request, settings.GATEWAY_METRICS_REQUIRES_KEY)
    if refused is not None:
        return refused
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


REGISTRY.register(RunCollector())

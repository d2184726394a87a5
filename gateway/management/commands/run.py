"""Serve everything from one process: the APIs and the console (waitress), a Celery worker
on the in-memory transport, and the scheduler. Ctrl-C (or SIGTERM) stops it all cleanly."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from gateway.celery import app as celery_app


class Stop(Exception):
    """Raised from the signal handler to leave the server loop."""


class Command(BaseCommand):
    help = "Run the gateway: web server, embedded worker and scheduler in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.GATEWAY_HOST)
        parser.add_argument("--port", type=int, default=settings.GATEWAY_PORT)
        parser.add_argument("--no-worker", action="store_true", help="leave tasks to a fleet")
        parser.add_argument("--no-scheduler", action="store_true", help="a separate scheduler runs")

    def handle(self, *args: Any, **options: Any) -> None:
        import waitress

        from gateway.embedded import EmbeddedWorker
        from gateway.wsgi import application
        from jobs.schedule.scheduler import Scheduler
        from jobs.services import recover_interrupted

        embedded_broker = settings.CELERY_BROKER_URL.startswith("memory://")
        run_worker = embedded_broker and not options["no_worker"]
        if embedded_broker:
            # Tasks queued in memory died with the previous process: close their executions.
            for line in recover_interrupted():
                self.stdout.write(line)
        self._on_start()

        stop = threading.Event()
        worker = None
        if run_worker:
            worker = EmbeddedWorker(
                celery_app,
                concurrency=settings.GATEWAY_EMBEDDED_CONCURRENCY,
                queues=_queues(),
            )
            worker.start()
        scheduler_thread = None
        if not options["no_scheduler"]:
            scheduler_thread = threading.Thread(
                target=Scheduler().run_forever, args=(stop,), name="scheduler", daemon=True
            )
            scheduler_thread.start()

        server = waitress.create_server(
            application,
            host=options["host"],
            port=options["port"],
            threads=settings.GATEWAY_THREADS,
        )

        def on_signal(signum: int, frame: FrameType | None) -> None:
            raise Stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.stdout.write(
            f"Gateway serving on http://{options['host']}:{options['port']}/ "
            f"(DataZen at /, DataFlux at /SASDataMgmtRTDataJob/rest, console at /admin/); "
            f"worker: {'embedded' if worker else 'fleet'}; "
            f"scheduler: {'embedded' if scheduler_thread else 'separate'}. Ctrl-C stops."
        )
        try:
            server.run()
        except (Stop, KeyboardInterrupt):
            self.stdout.write("Stopping…")
        finally:
            stop.set()
            server.close()
            if worker is not None:
                worker.stop()
            if scheduler_thread is not None:
                scheduler_thread.join(10)
            self.stdout.write("Stopped.")

    def _on_start(self) -> None:
        """Start-up duties of the vendor features that have them."""
        from jobs.agent import start_new_boot
        from jobs.definitions import purge_stale_dynamic_jobs
        from jobs.flows.runtime.engines import preload_configured_flows

        # A restart clears dynamic jobs, as DataZen's agent does; their history stays.
        start_new_boot()
        purge_stale_dynamic_jobs()
        for name in preload_configured_flows():
            self.stdout.write(f"Flow engine preloaded: {name}")


def _queues() -> list[str]:
    return list(dict.fromkeys([settings.CELERY_TASK_DEFAULT_QUEUE, *settings.GATEWAY_EXTRA_QUEUES]))

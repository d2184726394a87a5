"""Serve everything from one process: the APIs and the console (waitress), a Celery worker
on the in-memory transport, and the scheduler. Ctrl-C (or SIGTERM) stops it all cleanly; a
second one stops it at once. One instance per data directory (gateway/instance.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from gateway.celery import app as celery_app
from gateway.instance import (
    CannotListen,
    Claim,
    DataDirectoryBusy,
    add_address_arguments,
    claim,
    take_early_claim,
)


class Stop(KeyboardInterrupt):
    """Raised from the signal handler to leave the server loop.

    A KeyboardInterrupt, not an Exception: the signal may land while waitress is reading a
    request, and waitress logs and swallows any Exception raised there ("uncaptured python
    exception, closing channel") and serves on; a KeyboardInterrupt it lets through and ends
    its loop with.
    """


class Command(BaseCommand):
    help = "Run the gateway: web server, embedded worker and scheduler in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        add_address_arguments(parser)
        parser.add_argument("--no-worker", action="store_true", help="leave tasks to a fleet")
        parser.add_argument("--no-scheduler", action="store_true", help="a separate scheduler runs")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        # Before anything touches the data directory: a second instance must leave the live
        # one's executions, dynamic jobs and port alone (see gateway/instance.py). manage.py
        # claims before Django loads the gateway; called any other way, claim now.
        claimed = take_early_claim(host, port)
        if claimed is None:
            try:
                claimed = claim(host, port)
            except (DataDirectoryBusy, CannotListen) as exc:
                self.stderr.write(str(exc))
                sys.exit(1)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        try:
            self._serve(claimed, options)
        except Stop:
            self.stdout.write("Stopped before serving.")
        finally:
            claimed.release()

    def _serve(self, claimed: Claim, options: dict[str, Any]) -> None:
        import waitress

        # The server's parts load once the data directory's lock and the port are ours: a
        # refused second instance loads none of them (gateway.instance).
        from gateway.embedded import EmbeddedWorker
        from gateway.wsgi import application
        from jobs.schedule.scheduler import Scheduler
        from jobs.services import recover_interrupted

        host, port = claimed.host, claimed.port
        # The socket was bound before recovery and before the worker and scheduler start, so
        # a port in use cost one line and changed nothing.
        server = waitress.create_server(
            application, sockets=[claimed.sock], threads=settings.GATEWAY_THREADS
        )

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

        self.stdout.write(
            f"Gateway serving on http://{host}:{port}/ "
            f"(DataZen at /, DataFlux at /SASDataMgmtRTDataJob/rest, console at /admin/); "
            f"worker: {'embedded' if worker else 'fleet'}; "
            f"scheduler: {'embedded' if scheduler_thread else 'separate'}. Ctrl-C stops."
        )
        try:
            # run() returns once a Stop has ended waitress's loop; one raised just outside the
            # loop ends the run the same way.
            with contextlib.suppress(KeyboardInterrupt):
                server.run()
            self.stdout.write("Stopping… (Ctrl-C again stops at once)")
        finally:
            stop.set()
            server.close()
            if worker is not None:
                worker.stop()
            if scheduler_thread is not None:
                scheduler_thread.join(10)
            self.stdout.write("Stopped.")

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        """The first stop signal: leave the server loop, stopping the worker's tasks in turn.

        The worker may take a while to finish its tasks; a second signal leaves now. Its
        handler is set here, in the first signal's own handler: set where the Stop lands (the
        `finally` after the server loop) it came too late when the main thread was slow to
        get there (a loaded machine), and a second Ctrl-C 0.5 s after the first raised Stop
        again instead of stopping at once."""
        signal.signal(signal.SIGTERM, self._stop_at_once)
        signal.signal(signal.SIGINT, self._stop_at_once)
        raise Stop(signal.Signals(signum).name)

    def _stop_at_once(self, signum: int, frame: FrameType | None) -> None:
        # The data directory's lock goes with the process; the next start closes what was
        # running (recover_interrupted), so nothing is left marked running for good.
        self.stdout.write(
            "Stopped at once: jobs still running are closed as interrupted at the next start."
        )
        self.stdout.flush()
        os._exit(1)

    def _on_start(self) -> None:
        """Start-up duties of the vendor features that have them."""
        # (loaded with the server's parts, as in _serve)
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

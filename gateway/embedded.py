"""The embedded default: a real Celery worker running in a thread of the gateway process.

With the in-memory transport the producer (web threads) and the consumer (this worker)
must share one process; the same task code runs unchanged on a fleet of workers.
"""

from __future__ import annotations

import logging
import socket
import threading

from celery import Celery
from celery.worker import WorkController

logger = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, app: Celery, *, concurrency: int, queues: list[str]) -> None:
        self.queues = queues
        self.controller = WorkController(
            app=app,
            hostname=f"embedded@{socket.gethostname()}",
            pool="threads",
            concurrency=concurrency,
            queues=queues,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="INFO",
        )
        self.thread = threading.Thread(
            target=self.controller.start, name="celery-worker", daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        logger.info("embedded Celery worker started on queues %s", ", ".join(self.queues))

    def stop(self, timeout: float = 30.0) -> None:
        self.controller.stop(in_sighandler=False)
        self.thread.join(timeout)

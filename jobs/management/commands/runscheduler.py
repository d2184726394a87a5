"""`manage.py runscheduler`: the scheduler as its own process, for the fleet.

Run one or more (for failover); a database lease lets one lead. SIGTERM or Ctrl-C stops it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs.schedule.scheduler import Scheduler


class Command(BaseCommand):
    help = "Run the job scheduler (leader-elected) until SIGTERM or Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, help="seconds between ticks")
        parser.add_argument("--lease", type=float, help="seconds a leader's lease lasts")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scheduler = Scheduler(interval=options["interval"], lease_seconds=options["lease"])
        self.stdout.write(f"Scheduler {scheduler.holder} started; SIGTERM or Ctrl-C stops it.")
        self.stdout.flush()
        scheduler.run_forever(stop)
        self.stdout.write("Scheduler stopped.")

"""`manage.py jobs`: every stored job with its last run, as a table or JSON (--json)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from jobs import definitions, history
from jobs.models import Execution, Job


class Command(BaseCommand):
    help = "List the jobs with their schedule and the outcome of their last run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args: Any, **options: Any) -> None:
        rows, latest = history.job_listing(definitions.stored_jobs())
        listed = [describe(job, writer, latest) for job, writer in rows]
        if options["json"]:
            self.stdout.write(json.dumps(listed, indent=2))
            return
        if not listed:
            self.stdout.write("No jobs.")
            return
        columns = ("key", "kind", "active", "schedule", "last_run", "outcome", "rows", "seconds")
        table = [[str(row[c]) if row[c] is not None else "-" for c in columns] for row in listed]
        widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
        self.stdout.write(
            "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
        )
        for row, entry in zip(table, listed, strict=True):
            self.stdout.write(
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )
            if entry["error"]:
                self.stdout.write(f"    {entry['error'].splitlines()[0][:200]}")


def describe(job: Job, writer: Job | None, latest: dict[int, Execution]) -> dict[str, Any]:
    run = latest.get(job.pk)
    kind = "direct" if writer is not None else job.kind
    if run is None:
        last = outcome = rows = seconds = error = None
    else:
        last = timezone.localtime(run.created_on).strftime("%Y-%m-%d %H:%M:%S")
        outcome = run.status
        rows = run.records_direct_written if writer is not None else run.record_count
        seconds = round(run.run_seconds, 1) if run.run_seconds >= 0 else None
        error = run.error_message or None
    return {
        "key": job.job_key,
        "guid": job.guid,
        "kind": kind,
        "active": job.active,
        "schedule": job.cron_schedule or None,
        "last_run": last,
        "outcome": outcome,
        "rows": rows,
        "seconds": seconds,
        "error": error,
    }

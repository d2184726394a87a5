"""The agent's state: running or stopped (kept across restarts), what it is doing, and its boot."""

import os
import uuid
from functools import cache

from jobs.models import AgentState, Execution, ExecutionStatus


@cache
def boot_id() -> str:
    """The id of this gateway boot; dynamic jobs of earlier boots are gone.

    GATEWAY_BOOT_ID lets a launcher give every process of one boot (web workers, Celery
    workers) the same id; without it each process is its own boot, which is exact for the
    embedded default where one process does everything.
    """
    return os.environ.get("GATEWAY_BOOT_ID") or uuid.uuid4().hex


def is_running() -> bool:
    return AgentState.load().running


def set_running(running: bool) -> None:
    state = AgentState.load()
    if state.running != running:
        state.running = running
        state.save(update_fields=["running", "changed_at"])


def jobs_running() -> int:
    return Execution.objects.filter(status=ExecutionStatus.RUNNING).count()


def license_text() -> str:
    """The license the operator applied (admin console); the HTTP API never changes it."""
    return AgentState.load().license_text

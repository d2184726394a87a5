"""The agent's state: running or stopped (kept across restarts), what it is doing, and its boot."""

import os
import uuid

from jobs.models import AgentState, Execution, ExecutionStatus


def boot_id() -> str:
    """The id of the current gateway boot; dynamic jobs of earlier boots are gone.

    It lives in the database so that every process of one boot (web threads or gunicorn
    workers, Celery workers, the scheduler) agrees on it; `start_new_boot` begins a boot.
    GATEWAY_BOOT_ID, when set, wins (a launcher that manages boots itself).
    """
    override = os.environ.get("GATEWAY_BOOT_ID")
    if override:
        return override
    # A read that creates nothing: this runs on every DataZen listing.
    return AgentState.objects.filter(pk=1).values_list("boot_id", flat=True).first() or ""


def start_new_boot() -> str:
    """Begin a new boot: `manage.py run` and `manage.py bootstrap` call this at start-up."""
    state = AgentState.load()
    state.boot_id = uuid.uuid4().hex
    state.save(update_fields=["boot_id", "changed_at"])
    return state.boot_id


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

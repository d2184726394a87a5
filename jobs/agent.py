"""The agent's state: running or stopped (kept across restarts), and what it is doing."""

from jobs.models import AgentState, Execution, ExecutionStatus


def is_running() -> bool:
    return AgentState.load().running


def set_running(running: bool) -> None:
    state = AgentState.load()
    if state.running != running:
        state.running = running
        state.save(update_fields=["running", "changed_at"])


def jobs_running() -> int:
    return Execution.objects.filter(status=ExecutionStatus.RUNNING).count()

"""What can go wrong with a flow, each with what a DataFlux client is told."""

from __future__ import annotations


class FlowError(Exception):
    """The flow itself is invalid or failed while running; names the line when it is known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


class InputError(ValueError):
    """The execute request's inputs do not fit the flow: a bad type, a missing input, a bad row."""


class EngineBusy(Exception):
    """Every engine allowed is in use and the wait queue is full or waited too long."""


class RunTimeout(Exception):
    """The run went past its maximum time and was stopped."""


class EngineStopped(Exception):
    """The engine was unloaded (DELETE /engines/{id}) while it ran."""


class FlowGone(Exception):
    """The flow was deleted while the request waited for an engine."""


# How a worker tells the web which error it met (in the task result and Execution.result).
ERROR_KINDS: dict[type[Exception], str] = {
    InputError: "input",
    FlowError: "flow",
    EngineBusy: "busy",
    RunTimeout: "timeout",
    EngineStopped: "stopped",
    FlowGone: "gone",
}
_KIND_ERRORS = {kind: cls for cls, kind in ERROR_KINDS.items()}


def error_kind(exc: BaseException) -> str | None:
    """The kind of one of the errors above (None for any other exception)."""
    return next((kind for cls, kind in ERROR_KINDS.items() if isinstance(exc, cls)), None)


def error_of_kind(kind: str, message: str) -> Exception:
    """The error a kind stands for (FlowError when unknown), to raise on the web's side."""
    return _KIND_ERRORS.get(kind, FlowError)(message)

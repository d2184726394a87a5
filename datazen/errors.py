"""DataZen error bodies: JSON with the message and the status code, never an HTML page."""

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler

from gateway.api_errors import error_message
from jobs.crypto import SecretError
from jobs.definitions import DefinitionError, JobConflict, JobNotFound
from jobs.guard import ConnectionRefused
from jobs.history import HistoryError
from jobs.queueing import QueueUnavailable
from jobs.services import JobDisabled


def error_response(message: str, status: int) -> Response:
    return Response({"Error": message, "StatusCode": status}, status=status)


# Domain refusals from jobs/ carry no HTTP status: this is where DataZen's are decided.
# The most specific class comes first.
DOMAIN_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (ConnectionRefused, 403),
    (JobNotFound, 404),
    (JobConflict, 409),
    (DefinitionError, 400),
    (HistoryError, 400),
    (JobDisabled, 409),
    (QueueUnavailable, 503),
)


def datazen_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    for kind, status in DOMAIN_STATUS:
        if isinstance(exc, kind):
            return error_response(str(exc), status)
    if isinstance(exc, SecretError):
        return error_response(f"Server configuration: {exc}.", 500)
    response = exception_handler(exc, context)
    if response is None:
        return None
    response.data = {"Error": error_message(exc), "StatusCode": response.status_code}
    return response

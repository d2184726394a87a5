"""DataZen error bodies: JSON with the message and the status code, never an HTML page."""

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler

from gateway.api_errors import error_message
from jobs.crypto import SecretError
from jobs.definitions import DefinitionError
from jobs.history import HistoryError
from jobs.services import JobDisabled


def error_response(message: str, status: int) -> Response:
    return Response({"Error": message, "StatusCode": status}, status=status)


def datazen_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Domain refusals from jobs/ carry their own message; map them to the vendor's error body.
    if isinstance(exc, DefinitionError):
        return error_response(exc.message, exc.status_code)
    if isinstance(exc, HistoryError):
        return error_response(str(exc), 400)
    if isinstance(exc, JobDisabled):
        return error_response(str(exc), 409)
    if isinstance(exc, SecretError):
        return error_response(f"Server configuration: {exc}.", 500)
    response = exception_handler(exc, context)
    if response is None:
        return None
    response.data = {"Error": error_message(exc), "StatusCode": response.status_code}
    return response

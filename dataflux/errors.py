"""SAS error bodies (`application/vnd.sas.error+json`) for every failure, never an HTML page."""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from dataflux.media import ERROR
from gateway.api_errors import error_message

logger = logging.getLogger(__name__)

# errorCode values, documented in docs/dataflux.md.
BAD_REQUEST = 11001
BAD_INPUT = 11002
WRONG_ACCEPT = 11003
INVALID_FLOW = 11010
NOT_FOUND = 11020
INVALID_NAME = 11021
DUPLICATE = 11030
TOO_LARGE = 11040
TOO_MANY_ATTEMPTS = 11429
ENGINES_BUSY = 11050
TIME_LIMIT = 11060
ENGINE_STOPPED = 11061
NOT_AUTHENTICATED = 11401
FORBIDDEN = 11403
METHOD_NOT_ALLOWED = 11405
UNEXPECTED = 11500

_DEFAULT_CODES = {
    400: BAD_REQUEST,
    401: NOT_AUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    409: DUPLICATE,
    413: TOO_LARGE,
    415: BAD_REQUEST,
    429: TOO_MANY_ATTEMPTS,
    503: ENGINES_BUSY,
    504: TIME_LIMIT,
}


class SasError(exceptions.APIException):
    """An API error with its SAS errorCode and optional details."""

    def __init__(
        self, status_code: int, message: str, error_code: int | None = None, details: Any = None
    ) -> None:
        self.status_code = status_code
        self.error_code = error_code or _DEFAULT_CODES.get(status_code, UNEXPECTED)
        self.details = details
        super().__init__(message)


def error_body(status_code: int, message: str, code: int, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": 2,
        "httpStatusCode": status_code,
        "errorCode": code,
        "message": message,
        "details": details if isinstance(details, list) else ([details] if details else []),
    }
    return body


def sas_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, Http404):
        exc = SasError(404, str(exc) or "Not found.")
    response = exception_handler(exc, context)
    if response is None:
        # An unexpected failure: still the SAS shape, and the traceback goes to the log.
        logger.exception("DataFlux request failed", exc_info=exc)
        response = Response(status=status.HTTP_500_INTERNAL_SERVER_ERROR)
        message, code, details = "The server failed to process the request.", UNEXPECTED, None
    elif isinstance(exc, SasError):
        message, code, details = str(exc.detail), exc.error_code, exc.details
    else:
        message = error_message(exc)
        code, details = _DEFAULT_CODES.get(response.status_code, UNEXPECTED), None
    response.data = error_body(response.status_code, message, code, details)
    response.content_type = ERROR
    return response

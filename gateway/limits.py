"""Size, depth and number bounds on what clients send (docs/security.md).

`RequestLimitsMiddleware` refuses a body over its limit with 413 before anything reads it, in
the error shape of the API the path belongs to; `loads` is the JSON parser both vendor apps
use, with nesting depth and integer length bounded and NaN/Infinity refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

DATAFLUX_PREFIX = "/SASDataMgmtRTDataJob/"


class JSONLimitError(ValueError):
    """A JSON document over one of the bounds; the message says which."""


def loads(text: str | bytes) -> Any:
    """`json.loads` with GATEWAY_MAX_JSON_DEPTH and GATEWAY_MAX_JSON_INT_DIGITS enforced.

    Raises json.JSONDecodeError for malformed JSON and JSONLimitError for a bound.
    """
    try:
        value = json.loads(text, parse_int=_parse_int, parse_constant=_refuse_constant)
    except RecursionError:
        raise JSONLimitError(_too_deep()) from None
    _check_depth(value, settings.GATEWAY_MAX_JSON_DEPTH)
    return value


def _parse_int(digits: str) -> int:
    if len(digits) - digits.startswith("-") > settings.GATEWAY_MAX_JSON_INT_DIGITS:
        raise JSONLimitError(
            f"A number in the JSON body has {len(digits.lstrip('-'))} digits; the limit is "
            f"{settings.GATEWAY_MAX_JSON_INT_DIGITS} (GATEWAY_MAX_JSON_INT_DIGITS)."
        )
    return int(digits)


def _refuse_constant(name: str) -> Any:
    raise JSONLimitError(f"'{name}' is not a JSON number.")


def _too_deep() -> str:
    return (
        f"The JSON body is nested deeper than {settings.GATEWAY_MAX_JSON_DEPTH} levels "
        "(GATEWAY_MAX_JSON_DEPTH)."
    )


def _check_depth(value: Any, limit: int) -> None:
    # Iterative, over containers only: rows of scalars cost one type check per value.
    level: list[Any] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            raise JSONLimitError(_too_deep())
        deeper: list[Any] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            deeper.extend(item for item in items if isinstance(item, dict | list))
        level = deeper


def body_limit(path: str) -> int:
    """The largest body a request to `path` may carry."""
    if path.startswith(DATAFLUX_PREFIX):
        return int(settings.GATEWAY_MAX_DATAFLUX_BODY_BYTES)
    return int(settings.GATEWAY_MAX_BODY_BYTES)


def vendor_error(path: str, status: int, message: str) -> HttpResponse:
    """`message` in the error shape of the API `path` belongs to."""
    if path.startswith(DATAFLUX_PREFIX):
        # dataflux.media reads this module's limits: importing DataFlux at the top is a cycle.
        from dataflux.errors import _DEFAULT_CODES, UNEXPECTED, error_body
        from dataflux.media import ERROR

        body = error_body(status, message, _DEFAULT_CODES.get(status, UNEXPECTED))
        return JsonResponse(body, status=status, content_type=ERROR)
    return JsonResponse({"Error": message, "StatusCode": status}, status=status)


def _drop_body(response: HttpResponse) -> None:
    # A HEAD answer has the GET's headers (Content-Length included, as RFC 9110 allows) and
    # no body: waitress sends whatever the application returns, and a body there would be read
    # by a kept-alive client as the start of the next response.
    if getattr(response, "streaming", False):
        close = getattr(response, "close", None)
        response.streaming_content = []  # type: ignore[attr-defined]
        if close is not None:
            close()
    else:
        response.content = b""


class RequestLimitsMiddleware:
    """413 for a body over its limit, judged on Content-Length before the body is read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return vendor_error(request.path, 400, f"Content-Length '{declared}' is not a number.")
        if length < 0:
            return vendor_error(request.path, 400, f"Content-Length '{declared}' is negative.")
        limit = body_limit(request.path)
        if length > limit:
            return vendor_error(
                request.path, 413, f"The request body is {length} bytes; the limit is {limit}."
            )
        response = self.get_response(request)
        if request.method == "HEAD":
            _drop_body(response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # The last net under both APIs: an unexpected failure is still the vendor's error shape
        # (never Django's HTML page), and its traceback goes to the log. The console keeps
        # Django's own error pages.
        if request.path.startswith(("/admin/", "/static/")):
            return None
        logger.exception("Request failed: %s %s", request.method, request.path, exc_info=exception)
        return vendor_error(request.path, 500, "The server failed to process the request.")

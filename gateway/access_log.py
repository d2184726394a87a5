"""One access log line per request, in the embedded server (waitress) and on the fleet alike.

Waitress logs no requests and gunicorn's own access log is off by default; logging them here
gives both modes the same line. Only the path and the names of the query parameters are
logged, never a body or a parameter's value: those may carry client data (row values,
pointers, connection keys).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from gateway.metrics import endpoint_of

logger = logging.getLogger("gateway.access")


def client_of(request: HttpRequest) -> str:
    """Who called: the DataZen key's name or the DataFlux user, else '-'."""
    auth = getattr(request, "auth", None)
    name = getattr(auth, "name", None)
    if name:
        return f"key:{name}"
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.get_username()}"
    return "-"


class AccessLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        millis = (time.perf_counter() - started) * 1000
        query = ",".join(sorted(request.GET.keys()))
        size = len(response.content) if not response.streaming else -1
        fields = {
            "remote": request.META.get("REMOTE_ADDR", "-"),
            "method": request.method,
            "path": request.path,
            "query_keys": query,
            "endpoint": endpoint_of(request),
            "status": response.status_code,
            "bytes": size,
            "ms": round(millis, 1),
            "client": client_of(request),
        }
        logger.info(
            '%s "%s %s%s" %s %s %.1fms %s',
            fields["remote"],
            request.method,
            request.path,
            f"?{query}" if query else "",
            response.status_code,
            size,
            millis,
            fields["client"],
            extra={"access": fields},
        )
        return response

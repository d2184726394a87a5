"""Django's 404 and 500 pages for the vendor URL spaces: each in its vendor's error shape.

A request no URL pattern matches (an unknown DataZen path, a DataFlux flow id with a newline in
it) never reaches a vendor view, so its exception handler cannot answer; without these a vendor
client got Django's HTML page. This is the one answer to unknown paths (no catch-all routes).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views import defaults

DATAFLUX_PREFIX = "/SASDataMgmtRTDataJob/rest"
# The console, its static files and the API documents keep Django's own pages.
DJANGO_PAGES = ("/admin/", "/static/", "/api/schema/")
SAS_ERROR = "application/vnd.sas.error+json"  # dataflux.media.ERROR, without importing the app


def _answer(
    request: HttpRequest, status: int, message: str, datazen_message: str | None = None
) -> HttpResponse | None:
    path = request.path
    if path == DATAFLUX_PREFIX or path.startswith(DATAFLUX_PREFIX + "/"):
        code = 11020 if status == 404 else 11500  # dataflux.errors NOT_FOUND / UNEXPECTED
        body: dict[str, Any] = {
            "version": 2,
            "httpStatusCode": status,
            "errorCode": code,
            "message": message,
            "details": [],
        }
        return HttpResponse(json.dumps(body), status=status, content_type=SAS_ERROR)
    if path.startswith(DJANGO_PAGES):
        return None
    body = {"Error": datazen_message or message, "StatusCode": status}
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    answer = _answer(
        request,
        404,
        "There is no resource at this path.",
        f"No DataZen endpoint answers {request.method} {request.path}.",
    )
    return answer or defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    answer = _answer(request, 500, "The server failed to process the request.")
    return answer or defaults.server_error(request)

"""The optional key check of /health and /metrics: a DataZen access key, as SharedKey or Bearer.

Prometheus sends `Authorization: Bearer <token>` (its `authorization` scrape setting), DataZen
clients `SharedKey <key>`; both name an active access key. Whether it is needed is a setting
(GATEWAY_HEALTH_REQUIRES_KEY, GATEWAY_METRICS_REQUIRES_KEY), since load balancers' probes
often cannot send one.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse

from jobs.models import AccessKey

SCHEMES = ("sharedkey", "bearer")


def key_required_response(request: HttpRequest, required: bool) -> HttpResponse | None:
    """None when the request may go on; a 401 JSON answer when it needs a key it lacks."""
    if not required:
        return None
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    raw = raw.strip()
    if scheme.lower() in SCHEMES and raw and AccessKey.objects.authenticate(raw) is not None:
        return None
    body = {"Error": "An access key is required: 'Authorization: Bearer <key>'.", "StatusCode": 401}
    response = HttpResponse(json.dumps(body), status=401, content_type="application/json")
    response["WWW-Authenticate"] = 'Bearer realm="gateway"'
    return response

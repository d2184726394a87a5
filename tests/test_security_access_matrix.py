"""Every access-key kind on every DataZen endpoint: scope, read-only, decrypt and state.

A key that is inactive, or a near miss of a real key, gets 401; a key whose scope lacks the
endpoint's API, or a read-only key on anything but GET, gets 403 (GET /job/enable is a write);
`decrypt=1` on connections needs the decrypt right (403); every other call gets past
authentication (whatever the endpoint then answers to an empty request).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.urls import URLPattern, get_resolver
from rest_framework.test import APIClient

from jobs.models import AccessKey, AccessScope

pytestmark = pytest.mark.django_db

SCOPES = [AccessScope.ALL, AccessScope.AGENT, AccessScope.JOBS]
STATES = ["active", "inactive", "near-miss"]


def datazen_endpoints() -> list[tuple[str, str, str]]:
    """(method, path, api) of every DataZen route, read from the URL configuration."""
    found = []
    for pattern in get_resolver().url_patterns:
        if getattr(pattern, "namespace", None) != "datazen":
            continue
        for route in pattern.url_patterns:  # type: ignore[attr-defined]
            assert isinstance(route, URLPattern)
            view = route.callback.view_class  # type: ignore[attr-defined]
            path = "/" + str(route.pattern)
            for method in ("get", "post", "put", "delete"):
                if hasattr(view, method):
                    found.append((method.upper(), path, view.api))
    return found


ENDPOINTS = datazen_endpoints()


def test_the_matrix_covers_both_apis_and_every_route() -> None:
    assert {api for _, _, api in ENDPOINTS} == {"agent", "jobs"}
    assert len({path for _, path, _ in ENDPOINTS}) >= 20


def expected(
    method: str, api: str, path: str, scope: str, read_only: bool, decrypt: bool, state: str
) -> int | None:
    """The status the key must get, or None when it must get past authorization."""
    if state != "active":
        return 401
    if scope not in (AccessScope.ALL, api):
        return 403
    # GET /job/enable changes a job (the document shows it with GET): a write all the same.
    if read_only and (method != "GET" or path == "/job/enable"):
        return 403
    if path == "/connections" and not decrypt:
        return 403  # the call below asks for decrypt=1; metadata never decrypts
    return None


@pytest.mark.parametrize(
    ("scope", "read_only", "decrypt", "state"),
    list(itertools.product(SCOPES, [False, True], [False, True], STATES)),
)
def test_access_key_matrix(scope: str, read_only: bool, decrypt: bool, state: str) -> None:
    # given a key of this kind
    key, raw = AccessKey.generate("matrix", scope=scope, read_only=read_only, can_decrypt=decrypt)
    if state == "inactive":
        key.is_active = False
        key.save()
    if state == "near-miss":
        raw = raw[:-1] + ("0" if raw[-1] != "0" else "1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"SharedKey {raw}")
    wrong: list[str] = []
    for method, path, api in ENDPOINTS:
        # when
        query = "?decrypt=1" if path.startswith("/connections") else ""
        response = getattr(client, method.lower())(path + query, format="json")
        # then
        want = expected(method, api, path, scope, read_only, decrypt, state)
        got = response.status_code
        if (want is not None and got != want) or (want is None and got in (401, 403)):
            wrong.append(f"{method} {path}: {got}, expected {want or 'not 401/403'}")
        if got >= 400:
            body: Any = response.json()
            if set(body) != {"Error", "StatusCode"} or body["StatusCode"] != got:
                wrong.append(f"{method} {path}: error body {body!r}")
    assert wrong == []

"""The HTTP connection format: a JSON object stored (encrypted) as the connection's value.

`{"service": "http", "baseUrl": "https://host/path", "authType": "none|basic|bearer|apikey|
oauth2", …}` — docs/connections.md lists every member. Parsed once, here, into a typed
`HttpConnectionSettings`; everything else in the package works on that.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from jobs.sync.spec import SpecError, flag, integer, json_value

AUTH_TYPES = ("none", "basic", "bearer", "apikey", "oauth2")
# Members the format knows; an unknown one is refused (a typo would otherwise pass silently).
_KNOWN = {
    "service",
    "baseUrl",
    "authType",
    "username",
    "password",
    "token",
    "apiKeyHeader",
    "apiKey",
    "apiKeyIn",
    "tokenUrl",
    "clientId",
    "clientSecret",
    "scope",
    "headers",
    "timeoutSeconds",
    "connectTimeoutSeconds",
    "maxRetries",
    "rateLimitPerSecond",
    "verifyTls",
}


class HttpConnectionError(SpecError):
    """An HTTP connection string the gateway cannot use; the message names the member."""


@dataclass(frozen=True)
class HttpConnectionSettings:
    base_url: str
    auth_type: str = "none"
    username: str = ""
    password: str = ""
    token: str = ""
    api_key_header: str = "X-API-Key"
    api_key: str = ""
    api_key_in: str = "header"  # or "query": the key sent as a query parameter
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    scope: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    max_retries: int = 3
    rate_limit_per_second: float = 0.0
    verify_tls: bool = True

    @property
    def origin(self) -> tuple[str, str, int]:
        parts = urllib.parse.urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme, (parts.hostname or "").lower(), port

    def describe(self) -> str:
        """The non-secret part, for lists and logs."""
        return f"{self.base_url} ({self.auth_type})"


def header_pairs(value: Any, where: str) -> list[tuple[str, str]]:
    """Headers as DataZen writes them: a list of {Key, Value}, or that list JSON-encoded."""
    try:
        value = json_value(value, where)
    except SpecError as exc:
        raise HttpConnectionError(f"{exc} It holds a list of {{Key, Value}}.") from None
    if value is None:
        return []
    if isinstance(value, dict):  # {"Accept": "text/xml"}
        return [(str(k), str(v)) for k, v in value.items()]
    if not isinstance(value, list):
        raise HttpConnectionError(f"{where} must be a list of {{Key, Value}} objects.")
    pairs = []
    for item in value:
        if not isinstance(item, dict):
            raise HttpConnectionError(f"{where} must be a list of {{Key, Value}} objects.")
        key = item.get("Key", item.get("key", item.get("Name", item.get("name"))))
        if not isinstance(key, str) or not key.strip():
            raise HttpConnectionError(f"{where} has an entry without a Key.")
        raw = item.get("Value", item.get("value", ""))
        pairs.append((key.strip(), "" if raw is None else str(raw)))
    return pairs


def _number(value: Any, where: str, default: float) -> float:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise HttpConnectionError(f"{where} must be a number.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HttpConnectionError(f"{where} must be a number, not {value!r}.") from None
    if number < 0:
        raise HttpConnectionError(f"{where} must not be negative.")
    return number


def _string(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str | int):
        raise HttpConnectionError(f"HTTP connection member '{name}' must be a string.")
    return str(value).strip()


def parse_connection(value: str) -> HttpConnectionSettings:
    """The stored value → settings; raises HttpConnectionError naming what is wrong."""
    text = (value or "").strip()
    if text.startswith(("http://", "https://")):
        # A bare URL is the simplest connection: no auth, the defaults for the rest.
        text = json.dumps({"baseUrl": text})
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HttpConnectionError(
            "An HTTP connection string is a JSON object such as "
            '{"service": "http", "baseUrl": "https://host/path", "authType": "none"} '
            f"(line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    if not isinstance(data, dict):
        raise HttpConnectionError("An HTTP connection string is a JSON object.")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise HttpConnectionError(
            f"HTTP connection member(s) {', '.join(unknown)} unknown "
            f"(known: {', '.join(sorted(_KNOWN))})."
        )
    service = _string(data, "service").lower()
    if service not in ("", "http", "https", "rest", "soap"):
        raise HttpConnectionError(f"HTTP connection 'service' {service!r} is not 'http'.")
    base_url = _string(data, "baseUrl")
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpConnectionError(
            f"HTTP connection 'baseUrl' must be an http:// or https:// URL with a host, "
            f"not {base_url!r}."
        )
    if parts.username or parts.password:
        raise HttpConnectionError(
            "HTTP connection 'baseUrl' must not carry credentials: use authType and "
            "username/password."
        )
    if parts.query or parts.fragment:
        raise HttpConnectionError("HTTP connection 'baseUrl' must not have a query or fragment.")
    auth_type = (_string(data, "authType") or "none").lower()
    if auth_type not in AUTH_TYPES:
        raise HttpConnectionError(
            f"HTTP connection 'authType' {auth_type!r} is not one of {', '.join(AUTH_TYPES)}."
        )
    settings = HttpConnectionSettings(
        base_url=base_url.rstrip("/"),
        auth_type=auth_type,
        username=_string(data, "username"),
        password=_string(data, "password"),
        token=_string(data, "token"),
        api_key_header=_string(data, "apiKeyHeader") or "X-API-Key",
        api_key=_string(data, "apiKey"),
        api_key_in=(_string(data, "apiKeyIn") or "header").lower(),
        token_url=_string(data, "tokenUrl"),
        client_id=_string(data, "clientId"),
        client_secret=_string(data, "clientSecret"),
        scope=_string(data, "scope"),
        headers=header_pairs(data.get("headers"), "HTTP connection 'headers'"),
        timeout_seconds=_number(data.get("timeoutSeconds"), "'timeoutSeconds'", 30.0) or 30.0,
        connect_timeout_seconds=_number(
            data.get("connectTimeoutSeconds"), "'connectTimeoutSeconds'", 10.0
        )
        or 10.0,
        max_retries=integer(data.get("maxRetries"), "'maxRetries'", default=3),
        rate_limit_per_second=_number(data.get("rateLimitPerSecond"), "'rateLimitPerSecond'", 0),
        verify_tls=flag(data.get("verifyTls"), "'verifyTls'", default=True),
    )
    _check_auth(settings)
    if not 0 <= settings.max_retries <= 20:
        raise HttpConnectionError("HTTP connection 'maxRetries' must be between 0 and 20.")
    if settings.api_key_in not in ("header", "query"):
        raise HttpConnectionError("HTTP connection 'apiKeyIn' must be 'header' or 'query'.")
    return settings


def _check_auth(settings: HttpConnectionSettings) -> None:
    needs = {
        "basic": ("username",),
        "bearer": ("token",),
        "apikey": ("apiKey",),
        "oauth2": ("tokenUrl", "clientId", "clientSecret"),
    }.get(settings.auth_type, ())
    values = {
        "username": settings.username,
        "token": settings.token,
        "apiKey": settings.api_key,
        "tokenUrl": settings.token_url,
        "clientId": settings.client_id,
        "clientSecret": settings.client_secret,
    }
    missing = [name for name in needs if not values[name]]
    if missing:
        raise HttpConnectionError(
            f"HTTP connection with authType '{settings.auth_type}' needs {', '.join(missing)}."
        )
    if settings.auth_type == "oauth2":
        parts = urllib.parse.urlsplit(settings.token_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpConnectionError("HTTP connection 'tokenUrl' must be an http(s) URL.")

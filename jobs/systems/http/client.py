"""The HTTP client the connectors share: one pooled httpx client per connection string.

What every request gets: the connection's timeouts, headers and authentication; retries with
exponential backoff and jitter on connect errors, 429 and 5xx (a `Retry-After` is honoured);
an optional rate limit; TLS verification unless the connection turns it off; and the SSRF
guard — a request only ever goes to the connection's own base URL (`resolve_url`).
"""

from __future__ import annotations

import email.utils
import hashlib
import posixpath
import random
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx

from jobs.systems.http.auth import Auth, auth_for
from jobs.systems.http.connection import HttpConnectionSettings, parse_connection
from jobs.systems.http.documents import DocumentError, SoapFault, parse_xml, soap_fault

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
# A Retry-After longer than this fails the request instead of parking a worker for it.
RETRY_AFTER_MAX_SECONDS = 300.0
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_CLIENTS_KEPT = 32
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class HttpRequestError(RuntimeError):
    """A request that failed for good; the message says which and why (no secrets)."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class OutsideConnection(HttpRequestError):
    """A URL that is not under the connection's base URL (the SSRF guard)."""


def resolve_url(base_url: str, uri: str) -> str:
    """`uri` relative to `base_url`; an absolute URL only when it lies under the base URL.

    A job names a path on its stored connection's service, never a host: `..` segments that
    leave the base path, other hosts, ports or schemes, and backslash tricks are refused.
    """
    uri = (uri or "").strip()
    base = urllib.parse.urlsplit(base_url)
    base_path = base.path.rstrip("/")
    if "\\" in uri or any(ord(ch) < 32 for ch in uri):
        raise OutsideConnection(f"The URI {uri!r} has characters a URL path cannot hold.")
    target = urllib.parse.urlsplit(uri)
    if target.scheme or uri.startswith("//"):
        same = (
            target.scheme == base.scheme
            and (target.hostname or "").lower() == (base.hostname or "").lower()
            and (target.port or _default_port(target.scheme))
            == (base.port or _default_port(base.scheme))
            and not target.username
            and not target.password
        )
        if not same:
            raise OutsideConnection(
                f"The URL {_no_query(uri)} is not on the connection's service "
                f"({base.scheme}://{base.netloc}): a job only calls its connection's base URL."
            )
        path, query = target.path, target.query
    else:
        relative = target.path
        if relative and not relative.startswith("/"):
            relative = "/" + relative
        if relative.startswith(base_path + "/") and base_path:
            # A path that already repeats the base path (a next link the service returned).
            path = relative
        else:
            path = base_path + relative
        query = target.query
    decoded = urllib.parse.unquote(path)
    normal = posixpath.normpath(decoded) if decoded else "/"
    if decoded.endswith("/") and normal != "/":
        normal += "/"
    if ".." in decoded.split("/") or not (
        normal == base_path or normal.startswith(base_path + "/") or not base_path
    ):
        raise OutsideConnection(
            f"The URI {uri!r} leaves the connection's base path {base_path or '/'}."
        )
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path or "/", query, ""))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _no_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After`: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_seconds(attempt: int) -> float:
    """Exponential with full-range jitter, so clients retrying together spread out."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2**attempt))
    return random.uniform(ceiling / 2, ceiling)


class RateLimiter:
    """At most `per_second` request starts a second, spaced evenly (0: no limit)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class HttpClient:
    """One connection string's client: pool, auth, retries, rate limit, URL guard."""

    def __init__(self, settings: HttpConnectionSettings, *, name: str = "") -> None:
        self.settings = settings
        self.name = name or settings.base_url
        self.auth: Auth = auth_for(settings)
        self.limiter = RateLimiter(settings.rate_limit_per_second)
        self.sleep: Callable[[float], None] = time.sleep
        self.http = httpx.Client(
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            verify=settings.verify_tls,
            # A redirect could lead anywhere: the guard cannot follow it, so it is an error.
            follow_redirects=False,
            headers=dict(settings.headers),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    def url(self, uri: str) -> str:
        return resolve_url(self.settings.base_url, uri)

    def request(
        self,
        method: str,
        uri: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        content: str | bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Send with retries; a response that is still a failure after them raises."""
        url = self.url(uri)
        shown = _no_query(url)
        retries = self.settings.max_retries
        reauthenticated = False
        attempt = 0
        while True:
            self.limiter.wait()
            request = self.http.build_request(
                method.upper() or "GET",
                url,
                headers=headers or None,
                content=content,
                params=params or None,
            )
            self.auth.apply(request, self.http)
            try:
                streamed = self.http.send(request, stream=True)
                try:
                    body = _read_bounded(streamed)
                finally:
                    streamed.close()
                response = httpx.Response(
                    streamed.status_code, headers=streamed.headers, content=body, request=request
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                if attempt < retries:
                    self.sleep(backoff_seconds(attempt))
                    attempt += 1
                    continue
                raise HttpRequestError(
                    f"{method.upper()} {shown}: cannot connect after {attempt + 1} attempt(s): "
                    f"{exc or type(exc).__name__}"
                ) from exc
            except httpx.TimeoutException as exc:
                raise HttpRequestError(
                    f"{method.upper()} {shown}: no answer within "
                    f"{self.settings.timeout_seconds:g} s (timeoutSeconds)."
                ) from exc
            except httpx.HTTPError as exc:
                raise HttpRequestError(f"{method.upper()} {shown}: {exc}") from exc
            status = response.status_code
            if status == 401 and not reauthenticated and self.auth.refused():
                reauthenticated = True
                continue
            fault = _soap_fault(response)
            if (
                status in RETRYABLE_STATUS
                and attempt < retries
                and not (fault is not None and fault.blames_the_request)
            ):
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is not None and wait > RETRY_AFTER_MAX_SECONDS:
                    raise HttpRequestError(
                        f"{method.upper()} {shown} answered {status} with Retry-After "
                        f"{wait:.0f} s, longer than the gateway waits "
                        f"({RETRY_AFTER_MAX_SECONDS:.0f} s).",
                        status,
                        response.text[:1000],
                    )
                self.sleep(wait if wait is not None else backoff_seconds(attempt))
                attempt += 1
                continue
            if 300 <= status < 400:
                raise HttpRequestError(
                    f"{method.upper()} {shown} answered {status} (a redirect to "
                    f"{_no_query(response.headers.get('Location', '?'))}); redirects are not "
                    "followed: point baseUrl/HTTPURI at the final address.",
                    status,
                )
            if status >= 400:
                tried = f" after {attempt + 1} attempts" if attempt else ""
                said = f"a SOAP fault: {fault}" if fault is not None else _excerpt(response.text)
                raise HttpRequestError(
                    f"{method.upper()} {shown} answered {status}{tried}: {said}",
                    status,
                    response.text[:4000],
                )
            return response

    def close(self) -> None:
        self.http.close()


def _read_bounded(response: httpx.Response) -> bytes:
    chunks = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise HttpRequestError(
                f"The response is larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _soap_fault(response: httpx.Response) -> SoapFault | None:
    """The SOAP fault of an error answer, None when it is not one. SOAP 1.1 answers every
    fault with 500, so this is what tells a retryable one from the rest."""
    if response.status_code < 400 or b"Fault" not in response.content[:65536]:
        return None
    try:
        root = parse_xml(response.content, "The answer")
    except DocumentError:
        return None
    return soap_fault(root)


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


_clients: OrderedDict[str, HttpClient] = OrderedDict()
_clients_lock = threading.Lock()


def client_for(key: str | None, value: str) -> HttpClient:
    """The pooled client of a connection string (a changed value gets a new client)."""
    ident = hashlib.sha256(f"{key}\0{value}".encode()).hexdigest()
    with _clients_lock:
        client = _clients.get(ident)
        if client is not None:
            _clients.move_to_end(ident)
            return client
    client = HttpClient(parse_connection(value), name=key or "")
    with _clients_lock:
        existing = _clients.get(ident)
        if existing is not None:
            client.close()
            return existing
        _clients[ident] = client
        while len(_clients) > _CLIENTS_KEPT:
            _, old = _clients.popitem(last=False)
            old.close()
    return client


def forget_clients() -> None:
    """Close every pooled client (tests; a worker shutting down)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()

"""How a request proves who it is: one small strategy object per `authType`.

Each one adds what it needs to a request (`apply`); OAuth2 client credentials fetches a token
and keeps it until shortly before it expires, and forgets it when the service answers 401.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Protocol

import httpx

from jobs.systems.http.connection import HttpConnectionSettings

# A token is renewed this long before its stated expiry (clock skew, request time).
TOKEN_EXPIRY_MARGIN_SECONDS = 30.0
DEFAULT_TOKEN_LIFETIME_SECONDS = 300.0


class HttpAuthError(RuntimeError):
    """The service refused the credentials, or the token endpoint gave no token."""


class Auth(Protocol):
    def apply(self, request: httpx.Request, client: httpx.Client) -> None: ...

    def refused(self) -> bool:
        """A 401 came back: whether asking again (with fresh credentials) can help."""
        ...


class NoAuth:
    def apply(self, request: httpx.Request, client: httpx.Client) -> None:
        pass

    def refused(self) -> bool:
        return False


class BasicAuth:
    def __init__(self, username: str, password: str) -> None:
        pair = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(pair).decode("ascii")

    def apply(self, request: httpx.Request, client: httpx.Client) -> None:
        request.headers["Authorization"] = self._header

    def refused(self) -> bool:
        return False


class BearerAuth:
    def __init__(self, token: str) -> None:
        self.token = token

    def apply(self, request: httpx.Request, client: httpx.Client) -> None:
        request.headers["Authorization"] = f"Bearer {self.token}"

    def refused(self) -> bool:
        return False


class ApiKeyAuth:
    def __init__(self, header: str, key: str, *, in_query: bool = False) -> None:
        self.header, self.key, self.in_query = header, key, in_query

    def apply(self, request: httpx.Request, client: httpx.Client) -> None:
        if self.in_query:
            request.url = request.url.copy_merge_params({self.header: self.key})
        else:
            request.headers[self.header] = self.key

    def refused(self) -> bool:
        return False


class OAuth2ClientCredentials:
    """RFC 6749 §4.4: POST grant_type=client_credentials to tokenUrl; cache until expiry."""

    def __init__(self, settings: HttpConnectionSettings) -> None:
        self.settings = settings
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetched = 0  # how many tokens were asked for (tests, logs)

    def apply(self, request: httpx.Request, client: httpx.Client) -> None:
        request.headers["Authorization"] = f"Bearer {self.token(client)}"

    def token(self, client: httpx.Client) -> str:
        with self._lock:
            if not self._token or time.monotonic() >= self._expires:
                self._fetch(client)
            return self._token

    def refused(self) -> bool:
        # The service no longer takes the cached token (revoked, rotated): get a new one once.
        with self._lock:
            had = bool(self._token)
            self._token, self._expires = "", 0.0
        return had

    def _fetch(self, client: httpx.Client) -> None:
        s = self.settings
        form = {"grant_type": "client_credentials"}
        if s.scope:
            form["scope"] = s.scope
        try:
            response = client.post(
                s.token_url,
                data=form,
                auth=httpx.BasicAuth(s.client_id, s.client_secret),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise HttpAuthError(f"OAuth2 token request to {s.token_url} failed: {exc}") from exc
        if response.status_code != 200:
            raise HttpAuthError(
                f"OAuth2 token request to {s.token_url} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise HttpAuthError(
                f"OAuth2 token endpoint {s.token_url} answered without an access_token."
            ) from None
        lifetime = body.get("expires_in")
        try:
            seconds = float(lifetime) if lifetime is not None else DEFAULT_TOKEN_LIFETIME_SECONDS
        except (TypeError, ValueError):
            seconds = DEFAULT_TOKEN_LIFETIME_SECONDS
        self._token = str(token)
        self._expires = time.monotonic() + max(0.0, seconds - TOKEN_EXPIRY_MARGIN_SECONDS)
        self.fetched += 1


def auth_for(settings: HttpConnectionSettings) -> Auth:
    if settings.auth_type == "basic":
        return BasicAuth(settings.username, settings.password)
    if settings.auth_type == "bearer":
        return BearerAuth(settings.token)
    if settings.auth_type == "apikey":
        return ApiKeyAuth(
            settings.api_key_header, settings.api_key, in_query=settings.api_key_in == "query"
        )
    if settings.auth_type == "oauth2":
        return OAuth2ClientCredentials(settings)
    return NoAuth()

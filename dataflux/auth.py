"""HTTP Basic against Django users, the eTag anti-CSRF check, and per-request permissions.

Django's password hash is deliberately slow (hundreds of milliseconds), too slow to run on
every real-time call. A verified user name + password is remembered as a keyed hash (never the
password) until it has gone unused for DATAFLUX_AUTH_CACHE_SECONDS; each request still loads
the user (one prepared SELECT, jobs.flows.runtime.rows), so a deactivated user or a changed
password stops working at once. Requests that arrive together with the same unverified
credentials wait for one check instead of each hashing (docs/decisions.md, DataFlux
authentication).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import threading
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from gateway import throttle
from jobs.flows.runtime.rows import RowGetter

REALM = "SASDataMgmtRTDataJob"

_verified: dict[str, tuple[int, str, float]] = {}
_verified_lock = threading.Lock()
_MAX_REMEMBERED = 10_000
# Per fingerprint, the check in progress; others with the same credentials wait for it.
_checking: dict[str, threading.Event] = {}


def _fingerprint(username: str, password: str) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), f"basic\0{username}\0{password}".encode(), hashlib.sha256
    ).hexdigest()


def _remembered(fingerprint: str, entry: tuple[int, str, float] | None) -> Any | None:
    """The user of `entry` (what `_verified` held for `fingerprint`), if it still holds."""
    if entry is None:
        return None
    user_id, password_hash, expires = entry
    now = time.monotonic()
    if now > expires:
        return None
    user = _user_by_pk().get(user_id)
    if user is None or not user.is_active or user.password != password_hash:
        return None
    # Kept while in use: with a fixed lifetime every busy client's login expired at once and
    # each of its waiting requests hashed the password again, behind GATEWAY_AUTH_HASH_CONCURRENCY
    # slots (bench/realtime.py: a p99 of 11-18 s). Checking again would only recompute the
    # hash this entry already matched against the user's current one above.
    _verified[fingerprint] = (user_id, password_hash, now + settings.DATAFLUX_AUTH_CACHE_SECONDS)
    return user


@functools.cache
def _user_by_pk() -> RowGetter:
    """The user row, loaded fresh on every request without compiling a QuerySet each time.

    Only what authenticating and permission checks read (other fields load if something reads
    them): in Python 3.11's sqlite3 every column fetched releases the GIL, and under load every
    release is a thread switch.
    """
    model = get_user_model()
    wanted = (model._meta.pk.name, model.USERNAME_FIELD, "password", "is_active", "is_superuser")
    present = {field.name for field in model._meta.concrete_fields}
    return RowGetter(
        model, where=(model._meta.pk.name,), fields=[name for name in wanted if name in present]
    )


def _remember(fingerprint: str, user: Any) -> None:
    seconds = settings.DATAFLUX_AUTH_CACHE_SECONDS
    if seconds <= 0:
        return
    with _verified_lock:
        if len(_verified) >= _MAX_REMEMBERED:
            _verified.clear()
        _verified[fingerprint] = (user.pk, user.password, time.monotonic() + seconds)


def forget_verified() -> None:
    with _verified_lock:
        _verified.clear()


class BasicAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None]:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise exceptions.NotAuthenticated(
                "Authentication required: send HTTP Basic credentials."
            )
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise exceptions.AuthenticationFailed("Only HTTP Basic authentication is supported.")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Malformed HTTP Basic credentials.") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise exceptions.AuthenticationFailed("Malformed HTTP Basic credentials.")
        fingerprint = _fingerprint(username, password)
        if settings.DATAFLUX_AUTH_CACHE_SECONDS <= 0:
            return (self._check(request, username, password, fingerprint), None)
        waited_until: float | None = None
        while True:
            entry = _verified.get(fingerprint)
            user = _remembered(fingerprint, entry)
            if user is not None:
                return (user, None)
            with _verified_lock:
                if _verified.get(fingerprint) is not entry:
                    continue  # a check just finished: look at what it remembered
                pending = _checking.get(fingerprint)
                mine = pending is None
                if pending is None:
                    pending = _checking[fingerprint] = threading.Event()
            if not mine:
                # Another request checks these credentials now: its answer is ours. If it
                # failed, nothing is remembered and this one checks for itself (and counts as
                # a failure of its own), as before. Waiting is bounded as a hashing slot is.
                if waited_until is None:
                    waited_until = time.monotonic() + settings.GATEWAY_AUTH_HASH_WAIT_SECONDS
                if not pending.wait(max(0.0, waited_until - time.monotonic())):
                    raise throttle.too_many_checks()
                continue
            try:
                return (self._check(request, username, password, fingerprint), None)
            finally:
                with _verified_lock:
                    _checking.pop(fingerprint, None)
                pending.set()

    def _check(self, request: Request, username: str, password: str, fingerprint: str) -> Any:
        """The password hash: bounded (gateway/throttle.py), remembered when it matches."""
        throttle.check(request._request, username)
        with throttle.hashing():
            user = authenticate(request._request, username=username, password=password)
        if user is None or not user.is_active:
            throttle.fail(request._request, username)
            raise exceptions.AuthenticationFailed("Invalid user name or password.")
        _remember(fingerprint, user)
        return user

    def authenticate_header(self, request: Request) -> str:
        return f'Basic realm="{REALM}"'


# -- eTag ----------------------------------------------------------------------------------


def issue_etag(username: str, now: float | None = None) -> str:
    """A hex eTag: the issue time, then an HMAC (SECRET_KEY) over the user and that time."""
    issued = int(now if now is not None else time.time())
    return f"{issued:012x}{_etag_mac(username, issued)}"


def _etag_mac(username: str, issued: int) -> str:
    message = f"dataflux-etag\0{username}\0{issued}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def check_etag(username: str, presented: str, now: float | None = None) -> str | None:
    """None when `presented` is a valid, unexpired eTag for the user, else why not."""
    token = presented.strip()
    if token.startswith("W/"):
        token = token[2:]
    token = token.strip('"').lower()
    if len(token) != 12 + 64 or any(c not in "0123456789abcdef" for c in token):
        return "The eTag is not valid; get a new one with GET on the base URL."
    issued = int(token[:12], 16)
    if not hmac.compare_digest(token[12:], _etag_mac(username, issued)):
        return "The eTag is not valid; get a new one with GET on the base URL."
    age = (now if now is not None else time.time()) - issued
    if age > settings.DATAFLUX_ETAG_SECONDS or age < -60:
        return "The eTag has expired; get a new one with GET on the base URL."
    return None


class ETagRequired(BasePermission):
    """With DATAFLUX_ETAG on, every call but GET on the base URL must carry a valid eTag."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.user is None:
            raise exceptions.NotAuthenticated("Authentication required.")
        if not settings.DATAFLUX_ETAG or getattr(view, "issues_etag", False):
            return True
        presented = request.META.get("HTTP_IF_MATCH") or request.META.get("HTTP_ETAG") or ""
        if not presented:
            raise exceptions.AuthenticationFailed(
                "An eTag is required: send the one GET on the base URL returned in If-Match."
            )
        problem = check_etag(request.user.get_username(), presented)
        if problem:
            raise exceptions.AuthenticationFailed(problem)
        return True

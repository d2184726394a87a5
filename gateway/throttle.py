"""Failed sign-ins limited per user and per client address; password hashing bounded.

A wrong HTTP Basic password costs a full password hash (hundreds of milliseconds of CPU under
the GIL): sixteen clients sending wrong passwords made a legitimate request 300 times slower.
Two bounds keep that away from legitimate callers:
- after GATEWAY_AUTH_MAX_FAILURES failures of one user name, or
  GATEWAY_AUTH_MAX_FAILURES_PER_ADDRESS from one client address, within
  GATEWAY_AUTH_FAILURE_WINDOW seconds, further attempts that would need a check are answered
  429 at once, without hashing;
- at most GATEWAY_AUTH_HASH_CONCURRENCY password hashes run at a time in a process.
A caller whose credentials were verified recently (DataFlux's remembered logins) or whose
SharedKey matches never reaches either bound. The failure counts live in the gateway's
database (gateway.models.SignInFailure), so every web process of a fleet shares one budget;
a process remembers a key it found blocked until its window ends, so a flood of attempts past
the limit costs no query.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from math import ceil

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from rest_framework.exceptions import Throttled

from gateway.models import SignInFailure

_MAX_REMEMBERED = 100_000


def _digest(key: tuple[str, str]) -> str:
    kind, value = key
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()


class FailureCounter:
    """Fixed-window failure counts per key (a user name, a client address), in the database."""

    def __init__(self) -> None:
        self._blocked_until: dict[str, float] = {}  # this process's memo of blocked keys
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def blocked_for(self, limits: dict[tuple[str, str], int], now: float | None = None) -> float:
        """Seconds until every key of `limits` (key → its limit) may try again; 0 when it may."""
        now = time.time() if now is None else now
        digests = {_digest(key): limit for key, limit in limits.items()}
        remembered = [self._blocked_until.get(d, 0.0) - now for d in digests]
        if max(remembered, default=0.0) > 0:
            return max(remembered)
        window = settings.GATEWAY_AUTH_FAILURE_WINDOW
        wait = 0.0
        for key, started, count in SignInFailure.objects.filter(key__in=digests).values_list(
            "key", "window_started", "count"
        ):
            remaining = started + window - now
            if remaining > 0 and count >= digests[key]:
                self._remember(key, now + remaining)
                wait = max(wait, remaining)
        return wait

    def fail(self, key: tuple[str, str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        window = settings.GATEWAY_AUTH_FAILURE_WINDOW
        rows = SignInFailure.objects.filter(key=_digest(key))
        # Conditional updates, so that processes failing the same key at once all count.
        if rows.filter(window_started__gt=now - window).update(count=F("count") + 1):
            return
        if not rows.filter(window_started__lte=now - window).update(window_started=now, count=1):
            try:
                with transaction.atomic():
                    SignInFailure.objects.create(key=_digest(key), window_started=now, count=1)
            except IntegrityError:  # another process created it a moment ago
                rows.update(count=F("count") + 1)
        self._sweep(now, window)

    def clear(self) -> None:
        """Forget this process's memo (the counts themselves are rows: deleted with them)."""
        with self._lock:
            self._blocked_until.clear()

    def _remember(self, digest: str, until: float) -> None:
        with self._lock:
            if len(self._blocked_until) >= _MAX_REMEMBERED:  # a flood of distinct keys
                self._blocked_until.clear()
            self._blocked_until[digest] = until

    def _sweep(self, now: float, window: float) -> None:
        # Expired windows are deleted now and then (once a window per process), not per request.
        if now < self._next_sweep:
            return
        self._next_sweep = now + window
        SignInFailure.objects.filter(window_started__lte=now - window).delete()
        with self._lock:
            for digest in [d for d, until in self._blocked_until.items() if until <= now]:
                del self._blocked_until[digest]


failures = FailureCounter()
_hash_slots: threading.BoundedSemaphore | None = None
_hash_slots_lock = threading.Lock()


def client_address(request: HttpRequest) -> str:
    # REMOTE_ADDR only: a forwarded-for header is the client's to forge (docs/security.md).
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def check(request: HttpRequest, user: str | None = None) -> None:
    """Raise Throttled (429) when this address or user name has failed too often lately."""
    limits = {("address", client_address(request)): _per_address()}
    if user is not None:
        limits[("user", user)] = settings.GATEWAY_AUTH_MAX_FAILURES
    wait = failures.blocked_for(limits)
    if wait > 0:
        raise Throttled(
            wait=ceil(wait),
            detail=f"Too many failed sign-in attempts; try again in {ceil(wait)} seconds.",
        )


def fail(request: HttpRequest, user: str | None = None) -> None:
    failures.fail(("address", client_address(request)))
    if user is not None:
        failures.fail(("user", user))


def _per_address() -> int:
    return int(settings.GATEWAY_AUTH_MAX_FAILURES_PER_ADDRESS)


@contextmanager
def hashing() -> Iterator[None]:
    """Hold one of the process's password-hashing slots while checking a password."""
    global _hash_slots
    with _hash_slots_lock:
        if _hash_slots is None:
            _hash_slots = threading.BoundedSemaphore(settings.GATEWAY_AUTH_HASH_CONCURRENCY)
        slots = _hash_slots
    if not slots.acquire(timeout=settings.GATEWAY_AUTH_HASH_WAIT_SECONDS):
        raise too_many_checks()
    try:
        yield
    finally:
        slots.release()


def too_many_checks() -> Throttled:
    """What a sign-in that waited GATEWAY_AUTH_HASH_WAIT_SECONDS for a check is answered."""
    return Throttled(wait=1, detail="Too many sign-in checks at once; try again shortly.")

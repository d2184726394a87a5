"""Failed sign-ins limited per user and per client address; password hashing bounded.

A wrong HTTP Basic password costs a full password hash (hundreds of milliseconds of CPU under
the GIL): sixteen clients sending wrong passwords made a legitimate request 300 times slower.
Two bounds keep that away from legitimate callers:
- after GATEWAY_AUTH_MAX_FAILURES failures of one user name, or
  GATEWAY_AUTH_MAX_FAILURES_PER_ADDRESS from one client address, within
  GATEWAY_AUTH_FAILURE_WINDOW seconds, further attempts that would need a check are answered
  429 at once, without hashing or a database query;
- at most GATEWAY_AUTH_HASH_CONCURRENCY password hashes run at a time in a process.
A caller whose credentials were verified recently (DataFlux's remembered logins, a SharedKey
that matched) never reaches either bound. Counters live in the process (each gunicorn worker
has its own; docs/security.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from math import ceil

from django.conf import settings
from django.http import HttpRequest
from rest_framework.exceptions import Throttled

_MAX_TRACKED = 100_000


class FailureCounter:
    """Fixed-window failure counts per key (a user name, a client address)."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def blocked_for(self, key: tuple[str, str], limit: int, now: float | None = None) -> float:
        """Seconds until `key` may try again (0 when it may now)."""
        now = time.monotonic() if now is None else now
        entry = self._windows.get(key)
        if entry is None:
            return 0.0
        started, count = entry
        remaining = started + settings.GATEWAY_AUTH_FAILURE_WINDOW - now
        if remaining <= 0 or count < limit:
            return 0.0
        return remaining

    def fail(self, key: tuple[str, str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._windows) >= _MAX_TRACKED:
                self._forget_expired(now)
            started, count = self._windows.get(key, (now, 0))
            if now - started >= settings.GATEWAY_AUTH_FAILURE_WINDOW:
                started, count = now, 0
            self._windows[key] = (started, count + 1)

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()

    def _forget_expired(self, now: float) -> None:
        window = settings.GATEWAY_AUTH_FAILURE_WINDOW
        for key in [k for k, (started, _) in self._windows.items() if now - started >= window]:
            del self._windows[key]
        if len(self._windows) >= _MAX_TRACKED:  # a flood of distinct keys: start over
            self._windows.clear()


failures = FailureCounter()
_hash_slots: threading.BoundedSemaphore | None = None
_hash_slots_lock = threading.Lock()


def client_address(request: HttpRequest) -> str:
    # REMOTE_ADDR only: a forwarded-for header is the client's to forge (docs/security.md).
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def check(request: HttpRequest, user: str | None = None) -> None:
    """Raise Throttled (429) when this address or user name has failed too often lately."""
    waits = [failures.blocked_for(("address", client_address(request)), _per_address())]
    if user is not None:
        waits.append(failures.blocked_for(("user", user), settings.GATEWAY_AUTH_MAX_FAILURES))
    wait = max(waits)
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

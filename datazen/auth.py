"""`Authorization: SharedKey <key>` authentication and the agent/jobs scope check."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from gateway import throttle
from jobs.models import AccessKey

# last_used_at is a hint for operators: refreshing it at most once a minute keeps
# authentication free of a write per request.
LAST_USED_PRECISION = timedelta(minutes=1)


class SharedKeyAuthentication(BaseAuthentication):
    keyword = "SharedKey"

    def authenticate(self, request: Request) -> tuple[None, AccessKey]:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise exceptions.NotAuthenticated("Missing Authorization header (SharedKey <key>).")
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != self.keyword.lower() or not raw or " " in raw:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'SharedKey <key>'."
            )
        key = AccessKey.objects.authenticate(raw)
        if key is None:
            # Misses are bounded per client address (gateway/throttle.py); a known key is not,
            # and costs no look-up of the failure counts. A lookup is one SHA-256 and an index
            # probe, so the bound is about floods, not CPU; a key is 192 random bits, so a
            # right guess answered from a blocked address is not a risk worth a query per call.
            throttle.check(request._request)
            throttle.fail(request._request)
            raise exceptions.AuthenticationFailed("Unknown access key.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
            AccessKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return (None, key)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class KeyScopePermission(BasePermission):
    """The view's `api` ("agent" or "jobs") must be in the key's scope; read-only keys GET only."""

    message = "This access key is not allowed to make this call."

    def has_permission(self, request: Request, view: object) -> bool:
        key = request.auth
        if not isinstance(key, AccessKey):
            raise exceptions.NotAuthenticated("Missing Authorization header (SharedKey <key>).")
        api = view.api  # type: ignore[attr-defined]
        if not key.allows(api, request.method or "GET"):
            if key.read_only and request.method not in ("GET", "HEAD", "OPTIONS"):
                self.message = "This access key is read-only: only GET calls are allowed."
            else:
                self.message = f"This access key is not allowed to call the {api} API."
            return False
        return True

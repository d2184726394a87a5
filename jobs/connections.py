"""Connection strings as the engine and the console use them: resolve a reference, test it."""

from __future__ import annotations

import re
import socket
import urllib.parse
from dataclasses import dataclass

from django.conf import settings

from jobs.guard import ConnectionRefused
from jobs.models import ConnectionString, ConnectionType
from jobs.systems.db.url import ConnectionStringError, ado_members

CHECK_TIMEOUT_SECONDS = 10


class UnknownConnection(ValueError):
    """A job names a connection key no stored connection string has."""


class InlineConnectionRefused(ConnectionRefused):
    """A full connection string in a job while GATEWAY_INLINE_CONNECTIONS is off."""


INLINE_REFUSED = (
    "Inline connection strings are turned off on this gateway (GATEWAY_INLINE_CONNECTIONS): "
    "use the key of a connection string an operator stored (admin console or setconnection)."
)


def is_inline(value: str) -> bool:
    """A full connection string rather than the key of a stored one."""
    return any(mark in value for mark in ("=", ";", "://")) or value.lstrip().startswith("{")


def check_reference(reference: str, *, where: str = "") -> None:
    """Refuse, when a job is defined, a full connection string the operator has not allowed.

    Unknown keys are not refused here: a job may be defined before its connection is stored;
    its run says that no connection string has the key.
    """
    if is_inline(reference or "") and not settings.GATEWAY_INLINE_CONNECTIONS:
        raise InlineConnectionRefused(f"{where}: {INLINE_REFUSED}" if where else INLINE_REFUSED)


@dataclass(frozen=True)
class ResolvedConnection:
    """A job's `ConnectionString`: a stored key, or the full string given in the job itself."""

    key: str | None
    system: str
    connection_type: str
    value: str


def resolve(
    reference: str, *, default_system: str = "", default_type: str = "DB"
) -> ResolvedConnection:
    """Look `reference` up as a stored key; otherwise it is itself the connection string.

    A string that is not a stored key and does not look like a connection string is a key that
    no connection has (UnknownConnection); a full string is refused unless the operator turned
    GATEWAY_INLINE_CONNECTIONS on (every connection still passes jobs.guard when it opens).
    """
    reference = (reference or "").strip()
    if not reference:
        raise UnknownConnection("The job has no ConnectionString.")
    stored = ConnectionString.objects.filter(key=reference).first()
    if stored is not None:
        return ResolvedConnection(stored.key, stored.system, stored.connection_type, stored.value)
    check_unstored(reference)
    return ResolvedConnection(None, default_system, default_type, reference)


def check_unstored(reference: str) -> None:
    """A `ConnectionString` that is no stored key: refuse it unless it is a full connection
    string and GATEWAY_INLINE_CONNECTIONS allows those."""
    if not is_inline(reference):
        raise UnknownConnection(
            f"No connection string has the key '{reference}': an operator stores it in the "
            "admin console or with `manage.py setconnection`."
        )
    check_reference(reference)


def check_connection(system: str, connection_type: str, value: str) -> str:
    """Really connect to the system; returns a short description, raises with its message."""
    if connection_type == ConnectionType.DB:
        return _check_database(system, value)
    if connection_type == ConnectionType.DRIVE:
        from jobs.systems.drive import check_value  # the drive connector's own reading

        return check_value(value)
    if connection_type == ConnectionType.HTTP:
        # The HTTP connector's own check: the JSON format, its auth, a real request.
        from jobs.systems.base import Connection
        from jobs.systems.http import HttpSystem

        return HttpSystem().check(Connection(None, system, connection_type, value))
    parsed = urllib.parse.urlsplit(value if "://" in value else f"tcp://{value}")
    if not parsed.hostname or not parsed.port:
        raise ValueError("a messaging connection needs host and port, e.g. amqp://host:5672")
    with socket.create_connection((parsed.hostname, parsed.port), timeout=CHECK_TIMEOUT_SECONDS):
        return f"{parsed.hostname}:{parsed.port} accepts connections"


def _check_database(system: str, value: str) -> str:
    from sqlalchemy import text

    from jobs.systems.db.url import create_db_engine

    engine = create_db_engine(system, value)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return f"{engine.dialect.name} answers"


# -- masking -------------------------------------------------------------------------------

MASK = "....."
_SECRET_KEYS = frozenset({"password", "pwd", "passwd", "pass", "secret", "token", "apikey"})
# After the `@` that ends a URL's user info comes a host (a name, an IPv4 or a [IPv6]), an
# optional :port, then the path, query or the end.
_HOST_AFTER_AT = re.compile(r"(?:\[[^\]/]*\]|[^/?#:@\[\]]*)(?::\d*)?(?=[/?#]|$)")


def mask_connection_string(value: str) -> str:
    """`value` with every secret replaced by `.....`, found by parsing it, not by a pattern.

    URLs: the password of the user info (whatever its characters: `/`, `@`, `:`) and secret
    query parameters. ADO.NET strings: the values of password members, quoted or not. What
    cannot be parsed is masked whole; a stored connection's key is shown as it is.
    """
    if not is_inline(value):
        return value
    if "://" in value:
        return _mask_url(value)
    try:
        members = ado_members(value)
    except ConnectionStringError:
        return MASK
    masked = value
    for key, _, start, end in reversed(members):
        if key.replace(" ", "") in _SECRET_KEYS:
            masked = masked[:start] + MASK + masked[end:]
    return masked


def _mask_url(value: str) -> str:
    scheme, _, rest = value.partition("://")
    # The user info ends at the last `@` that is followed by a host: a password may hold `@`
    # (and an `@` in the query makes this mask more than the password, never less).
    for at in [i for i, c in enumerate(rest) if c == "@"][::-1]:
        if _HOST_AFTER_AT.match(rest, at + 1):
            user, sep, _ = rest[:at].partition(":")
            if sep:
                rest = f"{user}:{MASK}{rest[at:]}"
            break
    head, question, query = rest.partition("?")
    if question:
        parts = []
        for member in query.split("&"):
            name, equals, _ = member.partition("=")
            secret = equals and urllib.parse.unquote(name).lower() in _SECRET_KEYS
            parts.append(f"{name}={MASK}" if secret else member)
        rest = f"{head}?{'&'.join(parts)}"
    return f"{scheme}://{rest}"

"""Connection strings as the engine and the console use them: resolve a reference, test it."""

from __future__ import annotations

import re
import urllib.parse

from django.conf import settings
from sqlalchemy import Engine

from jobs.guard import ConnectionRefused
from jobs.models import ConnectionString, ConnectionType
from jobs.systems.base import Connection
from jobs.systems.db.url import ConnectionStringError, ado_members, create_db_engine


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


def resolve(reference: str, *, kind: str = "") -> Connection:
    """A job's `ConnectionString`: a stored key (its type decides the system), or the string
    itself where that is allowed.

    A string that is not a stored key and does not look like a connection string is a key that
    no connection has (UnknownConnection). HTTP, drive and messaging definitions (`kind`) name
    stored connections only; a full database string is refused unless the operator turned
    GATEWAY_INLINE_CONNECTIONS on (every connection still passes jobs.guard when it opens).
    """
    reference = (reference or "").strip()
    if not reference:
        raise UnknownConnection("The job has no ConnectionString.")
    stored = ConnectionString.objects.filter(key=reference).first()
    if stored is not None:
        return Connection(stored.key, stored.system, stored.connection_type, stored.value)
    if kind and kind != ConnectionType.DB and is_inline(reference):
        raise UnknownConnection(
            f"{kind} connections are named by the key of a stored connection string, "
            "not written into the job."
        )
    check_unstored(reference)
    return Connection(None, "", ConnectionType.DB, reference)


def check_unstored(reference: str) -> None:
    """A `ConnectionString` that is no stored key: refuse it unless it is a full connection
    string and GATEWAY_INLINE_CONNECTIONS allows those."""
    if not is_inline(reference):
        raise UnknownConnection(
            f"No connection string has the key '{reference}': an operator stores it in the "
            "admin console or with `manage.py setconnection`."
        )
    check_reference(reference)


def database_engine(reference: str) -> Engine:
    """The SQLAlchemy engine of a database connection named by key (or inline, if allowed):
    what pipeline SQL steps and flow nodes run their statements on."""
    connection = resolve(reference, kind=ConnectionType.DB)
    if connection.kind != ConnectionType.DB:
        raise ConnectionStringError(f"{connection.describe()} is not a database connection")
    return create_db_engine(connection.system, connection.value)


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

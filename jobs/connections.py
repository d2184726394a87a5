"""Connection strings as the engine and the console use them: resolve a reference, test it."""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass

from jobs.models import ConnectionString, ConnectionType

CHECK_TIMEOUT_SECONDS = 10


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
    """Look `reference` up as a stored key; otherwise it is itself the connection string."""
    stored = ConnectionString.objects.filter(key=reference).first()
    if stored is not None:
        return ResolvedConnection(stored.key, stored.system, stored.connection_type, stored.value)
    return ResolvedConnection(None, default_system, default_type, reference)


def check_connection(system: str, connection_type: str, value: str) -> str:
    """Really connect to the system; returns a short description, raises with its message."""
    if connection_type == ConnectionType.DB:
        return _check_database(system, value)
    if connection_type == ConnectionType.DRIVE:
        from jobs.systems.drive import check_value  # the drive connector's own reading

        return check_value(value)
    if connection_type == ConnectionType.HTTP:
        request = urllib.request.Request(value, method="HEAD")
        with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT_SECONDS) as response:
            return f"HTTP {response.status}"
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

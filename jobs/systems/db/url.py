"""Connection strings → SQLAlchemy URLs and engines for SQLite, PostgreSQL and MySQL/MariaDB.

Accepts SQLAlchemy URLs and the ADO.NET style of the vendor's examples
(`Data Source=host,port;User Id=…;Password=…;Initial Catalog=…`).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from django.conf import settings
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError

CONNECT_TIMEOUT_SECONDS = 15

# System names as clients spell them → SQLAlchemy dialect+driver.
SYSTEM_DRIVERS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "pgsql": "postgresql+psycopg",
    "npgsql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    # SQL Server through python-tds (a pure-Python wheel); not verified against a live server.
    "sqlserver": "mssql+pytds",
    "sql server": "mssql+pytds",
    "mssql": "mssql+pytds",
    "azuresql": "mssql+pytds",
}
_BARE_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mssql": "mssql+pytds",
    "sqlserver": "mssql+pytds",
}
_DEFAULT_PORTS = {5432: "postgresql+psycopg", 3306: "mysql+pymysql", 1433: "mssql+pytds"}

_HOST_KEYS = ("data source", "server", "host", "address", "addr", "network address", "datasource")
_PORT_KEYS = ("port",)
_USER_KEYS = ("user id", "uid", "user", "username", "user name", "userid")
_PASSWORD_KEYS = ("password", "pwd")
_DATABASE_KEYS = ("initial catalog", "database", "db", "dbname")
_SYSTEM_KEYS = ("system", "provider", "dialect")


class ConnectionStringError(ValueError):
    """The connection string cannot be understood; the message says why."""


def to_url(system: str, value: str) -> URL:
    """The SQLAlchemy URL for a connection string of `system` ('' when unknown)."""
    value = (value or "").strip()
    if not value:
        raise ConnectionStringError("The connection string is empty.")
    if "://" in value:
        return _from_sqlalchemy_url(value)
    return _from_ado(system, value)


def _from_sqlalchemy_url(value: str) -> URL:
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ConnectionStringError(f"Not a valid database URL: {exc}") from exc
    driver = _BARE_DRIVERS.get(url.drivername)
    if driver:
        url = url.set(drivername=driver)
    if url.get_backend_name() not in ("sqlite", "postgresql", "mysql", "mariadb", "mssql"):
        raise ConnectionStringError(
            f"Database system '{url.get_backend_name()}' is not supported "
            "(SQLite, PostgreSQL, MySQL/MariaDB, SQL Server are)."
        )
    if url.get_backend_name() == "sqlite":
        _check_sqlite_path(url.database or "")
    return url


def parse_ado(value: str) -> dict[str, str]:
    """`key=value;…` pairs, keys lower-cased; values may be quoted with '…', "…" or {…}."""
    pairs: dict[str, str] = {}
    pattern = re.compile(
        r"\s*([^=;]+?)\s*=\s*('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\{[^}]*\}|[^;]*)\s*(?:;|$)"
    )
    position = 0
    while position < len(value):
        if value[position] in "; \t\r\n":
            position += 1
            continue
        match = pattern.match(value, position)
        if match is None or match.end() == position:
            raise ConnectionStringError(
                f"Cannot read the connection string near character {position + 1}."
            )
        key, raw = match.group(1).strip().lower(), match.group(2).strip()
        if raw[:1] in ("'", '"') and raw[-1:] == raw[:1] and len(raw) >= 2:
            raw = raw[1:-1].replace(raw[0] * 2, raw[0])
        elif raw[:1] == "{" and raw[-1:] == "}":
            raw = raw[1:-1]
        pairs[key] = raw
        position = match.end()
    return pairs


def _first(pairs: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if pairs.get(key):
            return pairs[key]
    return None


def _from_ado(system: str, value: str) -> URL:
    pairs = parse_ado(value)
    host_value = _first(pairs, _HOST_KEYS) or ""
    hint = (system or _first(pairs, _SYSTEM_KEYS) or "").strip().lower()
    driver = SYSTEM_DRIVERS.get(hint)
    if hint and driver is None:
        raise ConnectionStringError(
            f"Database system '{system or hint}' is not supported "
            "(SQLite, PostgreSQL, MySQL/MariaDB, SQL Server are)."
        )
    host, port = _split_host(host_value)
    if _first(pairs, _PORT_KEYS):
        port = _port(_first(pairs, _PORT_KEYS) or "")
    if driver is None:
        driver = _DEFAULT_PORTS.get(port or 0)
    if driver is None and _looks_like_file(host_value):
        driver = "sqlite"
    if driver is None:
        raise ConnectionStringError(
            "Cannot tell which database system this connection string is for; store it as a "
            "connection key with its system, or give a URL (postgresql://…, mysql://…, sqlite:///…)."
        )
    if driver == "sqlite":
        _check_sqlite_path(host_value)
        return URL.create("sqlite", database=host_value)
    return URL.create(
        driver,
        username=_first(pairs, _USER_KEYS),
        password=_first(pairs, _PASSWORD_KEYS),
        host=host or "localhost",
        port=port,
        database=_first(pairs, _DATABASE_KEYS),
        query={"charset": "utf8mb4"} if driver.startswith("mysql") else {},
    )


def _split_host(value: str) -> tuple[str, int | None]:
    # ADO.NET writes `host,port`; some clients write `host:port`.
    value = value.strip()
    if value.lower().startswith("tcp:"):
        value = value[4:]
    for separator in (",", ":"):
        if separator in value and not _looks_like_file(value):
            host, _, port = value.rpartition(separator)
            return host.strip(), _port(port)
    return value, None


def _port(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError as exc:
        raise ConnectionStringError(f"'{text}' is not a port number.") from exc


def _looks_like_file(value: str) -> bool:
    lowered = value.lower()
    return (
        lowered.endswith((".db", ".sqlite", ".sqlite3", ".db3"))
        or "/" in value
        or "\\" in value
        or lowered == ":memory:"
    )


def _check_sqlite_path(path: str) -> None:
    # A job must not read the gateway's own database (keys, encrypted connection strings).
    if not path or path == ":memory:":
        return
    own = settings.DATABASES["default"]
    names = {str(own.get("NAME", "")), str(own.get("TEST", {}).get("NAME") or "")}
    resolved = str(Path(path).expanduser().resolve())
    if any(name and str(Path(name).resolve()) == resolved for name in names):
        raise ConnectionStringError("A job cannot use the gateway's own database.")


_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def create_db_engine(system: str, value: str) -> Engine:
    """An engine for the connection string; engines are cached per URL (they pool connections)."""
    url = to_url(system, value)
    cache_key = url.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(cache_key)
        if engine is None:
            engine = _new_engine(url)
            _engines[cache_key] = engine
    return engine


def _new_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # Let the writer's BEGIN take the write lock at once, instead of the sqlite3
            # module's implicit transactions that start late and upgrade (deadlock-prone).
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):  # type: ignore[no-untyped-def]
            # Writers ask for BEGIN IMMEDIATE: take the write lock up front, wait for it.
            connection.exec_driver_sql(
                connection.get_execution_options().get("sqlite_begin", "BEGIN")
            )

        return engine
    connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if backend == "mssql":
        connect_args = {"login_timeout": CONNECT_TIMEOUT_SECONDS}  # python-tds's name for it
    if backend == "postgresql" and "options" not in url.query:
        # Sessions in UTC: timestamptz values arrive with datetime.timezone.utc already,
        # so the reader has nothing to convert (the instants are the same in any zone).
        connect_args["options"] = "-c TimeZone=UTC"
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True, pool_size=5)


def dispose_engines() -> None:
    """Close every cached engine's connections (tests drop their databases afterwards)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def engine_for(reference: str) -> Engine:
    """The engine for a job's `ConnectionString`: a stored key (its system decides) or a string."""
    from jobs.models import ConnectionString

    reference = (reference or "").strip()
    if not reference:
        raise ConnectionStringError("The job has no ConnectionString.")
    stored = ConnectionString.objects.filter(key=reference).first()
    if stored is not None:
        return create_db_engine(stored.system, stored.value)
    return create_db_engine("", reference)

"""Connection strings → SQLAlchemy URLs and engines for SQLite, PostgreSQL and MySQL/MariaDB.

Accepts SQLAlchemy URLs and the ADO.NET style of the vendor's examples
(`Data Source=host,port;User Id=…;Password=…;Initial Catalog=…`).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from jobs import guard
from jobs.regex import sql_regexp

CONNECT_TIMEOUT_SECONDS = 15
_COM_RESET_CONNECTION = 0x1F  # MySQL 5.7+ and MariaDB 10.2+

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
    """The SQLAlchemy URL for a connection string of `system` ('' when unknown), guarded.

    Raises ConnectionStringError when it cannot be understood and guard.ConnectionRefused when
    it names something no job may reach (the gateway's database, files, driver options).
    """
    value = (value or "").strip()
    if not value:
        raise ConnectionStringError("The connection string is empty.")
    url = _from_sqlalchemy_url(value) if "://" in value else _from_ado(system, value)
    if url.get_backend_name() == "sqlite":
        guard.sqlite_target(url)
    else:
        guard.check_server(url)
    return url


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
    return url


_ADO_MEMBER = re.compile(
    r"\s*([^=;]+?)\s*=\s*('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\{[^}]*\}|[^;]*)\s*(?:;|$)"
)


def ado_members(value: str) -> list[tuple[str, str, int, int]]:
    """`key=value;…` members as (key lower-cased, raw value, value start, value end)."""
    members: list[tuple[str, str, int, int]] = []
    position = 0
    while position < len(value):
        if value[position] in "; \t\r\n":
            position += 1
            continue
        match = _ADO_MEMBER.match(value, position)
        if match is None or match.end() == position:
            raise ConnectionStringError(
                f"Cannot read the connection string near character {position + 1}."
            )
        raw = match.group(2)
        start = match.start(2)
        stripped = raw.strip()
        start += len(raw) - len(raw.lstrip())
        members.append((match.group(1).strip().lower(), stripped, start, start + len(stripped)))
        position = match.end()
    return members


def parse_ado(value: str) -> dict[str, str]:
    """`key=value;…` pairs, keys lower-cased; values may be quoted with '…', "…" or {…}."""
    pairs: dict[str, str] = {}
    for key, raw, _, _ in ado_members(value):
        if raw[:1] in ("'", '"') and raw[-1:] == raw[:1] and len(raw) >= 2:
            raw = raw[1:-1].replace(raw[0] * 2, raw[0])
        elif raw[:1] == "{" and raw[-1:] == "}":
            raw = raw[1:-1]
        pairs[key] = raw
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
        return _new_sqlite_engine(url)
    connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if backend == "mssql":
        connect_args = {"login_timeout": CONNECT_TIMEOUT_SECONDS}  # python-tds's name for it
    if backend == "postgresql":
        # Sessions in UTC: timestamptz values arrive with datetime.timezone.utc already,
        # so the reader has nothing to convert (the instants are the same in any zone).
        connect_args["options"] = "-c TimeZone=UTC"
    else:
        # Forced off whatever the URL says (the guard refuses the option too): LOAD DATA LOCAL
        # would let the server ask this process for any file it can read.
        connect_args["local_infile"] = False
    # hide_parameters: a failing statement's error (the run's log, the process log) names the
    # SQL, never the row values bound to it.
    engine = create_engine(
        url, connect_args=connect_args, pool_pre_ping=True, pool_size=5, hide_parameters=True
    )

    @event.listens_for(engine, "do_connect")
    def _guard_each_connect(dialect, record, cargs, cparams):  # type: ignore[no-untyped-def]
        # Names resolve again at every new connection: a DNS answer may have changed.
        guard.check_server(url)

    if backend == "mysql":

        @event.listens_for(engine, "reset")
        def _reset_mysql_session(dbapi_connection, record, reset_state):  # type: ignore[no-untyped-def]
            # COM_RESET_CONNECTION: the server drops the session's temporary tables, user
            # variables, SET values and prepared statements, so nothing passes to the next job.
            # PyMySQL has no call for it; the character set and autocommit mode the engine
            # asked for are sent again afterwards. A failure here makes the pool discard the
            # connection.
            dbapi_connection.rollback()
            if not reset_state.terminate_only:
                dbapi_connection._execute_command(_COM_RESET_CONNECTION, b"")
                dbapi_connection._read_ok_packet()
                dbapi_connection.set_character_set(
                    dbapi_connection.charset, dbapi_connection.collation
                )
                dbapi_connection.autocommit(dbapi_connection.autocommit_mode)

    if backend == "postgresql":

        @event.listens_for(engine, "reset")
        def _reset_session(dbapi_connection, record, reset_state):  # type: ignore[no-untyped-def]
            # A pooled session carries nothing from one job to the next: no open cursors,
            # no SET values, no temporary tables. psycopg runs these in a transaction of
            # their own (RESET is transactional), committed so they hold.
            dbapi_connection.rollback()
            if not reset_state.terminate_only:
                dbapi_connection.execute("CLOSE ALL")
                dbapi_connection.execute("RESET ALL")
                dbapi_connection.execute("DISCARD TEMP")
                dbapi_connection.commit()

    return engine


def _new_sqlite_engine(url: URL) -> Engine:
    # Not pooled: every connect opens the file that is at the path now (a source replaced by
    # a rename is read fresh) and no connection state passes from one job to the next. The
    # connection is opened by the guard's connector, which checks the file and installs the
    # authorizer (no ATTACH, DETACH, load_extension, writable schema).
    target = guard.sqlite_target(url)
    engine = create_engine(
        "sqlite://",
        creator=guard.sqlite_connector(target, timeout=30),
        poolclass=NullPool,
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let the writer's BEGIN take the write lock at once, instead of the sqlite3
        # module's implicit transactions that start late and upgrade (deadlock-prone).
        dbapi_connection.isolation_level = None
        # REGEXP in a job's SQL matches in linear time: SQLAlchemy registers Python's `re`.
        dbapi_connection.create_function("regexp", 2, sql_regexp, deterministic=True)

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Any) -> None:
        # Writers ask for BEGIN IMMEDIATE: take the write lock up front, wait for it.
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def dispose_engines() -> None:
    """Close every cached engine's connections (tests drop their databases afterwards)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()

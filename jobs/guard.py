"""The one guard every database connection a job opens passes (docs/security.md).

A jobs key runs the SQL its jobs define against connections; no job may reach the gateway's own
database, its secrets or its data directory outside the jobs' folders, nor hand the driver
options that read the host's files. SQLite files are compared by device and inode (symlinks,
hard links, `..`, `file:` URIs all end at an inode), servers by resolved address, port and
database name, and driver options come from an allow-list per dialect.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import sqlite3
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from sqlalchemy import URL

# Folders of the data directory that belong to the gateway, not to a job's `Path`.
GATEWAY_FOLDERS = frozenset({"stage", "flows", "static"})
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}

# Driver options (URL query parameters) a job's connection may carry, per dialect. Everything
# else is refused: psycopg's `host`/`service`/`passfile`/`sslkey` and pymysql's
# `read_default_file`/`unix_socket`/`local_infile`/`init_command` name hosts or host files.
ALLOWED_OPTIONS: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"mode", "uri"}),
    "postgresql": frozenset(
        {
            "sslmode",
            "application_name",
            "connect_timeout",
            "target_session_attrs",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "client_encoding",
        }
    ),
    "mysql": frozenset(
        {
            "charset",
            "connect_timeout",
            "read_timeout",
            "write_timeout",
            "collation",
            "binary_prefix",
        }
    ),
}
_SQLITE_MODES = ("ro", "rw", "rwc")


def own_databases() -> list[dict[str, Any]]:
    """The gateway's own databases, as Django connects to them."""
    return list(settings.DATABASES.values())


class ConnectionRefused(ValueError):
    """A job's connection the guard refuses; the message says which rule (DataZen: 403)."""


# -- driver options ----------------------------------------------------------------------------


def check_options(url: URL) -> None:
    backend = "mysql" if url.get_backend_name() == "mariadb" else url.get_backend_name()
    allowed = ALLOWED_OPTIONS.get(backend, frozenset())
    refused = sorted(name for name in url.query if name.lower() not in allowed)
    if refused:
        raise ConnectionRefused(
            f"Driver option(s) {', '.join(refused)} are not allowed on a job's {backend} "
            f"connection (allowed: {', '.join(sorted(allowed)) or 'none'})."
        )


# -- SQLite ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqliteTarget:
    """The file a job's SQLite connection opens, as the guard checked it."""

    path: str  # absolute, symlinks resolved; ":memory:" for an in-memory database
    mode: str  # ro, rw or rwc

    def uri(self) -> str:
        if self.path == ":memory:":
            return "file::memory:"
        return f"file:{urllib.parse.quote(self.path)}?mode={self.mode}"


def sqlite_target(url: URL) -> SqliteTarget:
    """The file `url` names (plain path or `file:` URI), checked against the gateway's files."""
    check_options(url)
    name = url.database or ""
    mode = str(url.query.get("mode") or "rwc")
    if name.lower().startswith("file:"):
        name, uri_options = _file_uri(name)
        mode = uri_options.pop("mode", mode)
        if uri_options:
            raise ConnectionRefused(
                f"SQLite URI option(s) {', '.join(sorted(uri_options))} are not allowed "
                "on a job's connection (allowed: mode)."
            )
    if mode not in _SQLITE_MODES:
        raise ConnectionRefused(f"SQLite mode '{mode}' is not allowed (ro, rw or rwc are).")
    if name in ("", ":memory:"):
        return SqliteTarget(":memory:", mode)
    path = os.path.realpath(name)
    check_sqlite_file(path)
    return SqliteTarget(path, mode)


def _file_uri(value: str) -> tuple[str, dict[str, str]]:
    # SQLite's URI rules: file:[//[localhost]]path[?query][#fragment], percent-decoded.
    parsed = urllib.parse.urlsplit(value)
    if parsed.netloc not in ("", "localhost"):
        raise ConnectionRefused(f"SQLite URI authority '{parsed.netloc}' is not allowed.")
    options = {
        k.lower(): v for k, v in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    }
    path = urllib.parse.unquote(parsed.path)
    if path == ":memory:" or options.get("mode") == "memory":
        options.pop("mode", None)
        return ":memory:", options
    return path, options


def check_sqlite_file(path: str) -> None:
    """Refuse the gateway's database (and its WAL/SHM), its secrets and its data directory."""
    real = os.path.realpath(path)
    identity = _identity(real)
    protected_paths, data_dir = _protected_paths(*_protected_names())
    for protected in protected_paths:
        if real == protected or (identity is not None and identity == _identity(protected)):
            raise ConnectionRefused("A job cannot use the gateway's own database or its files.")
    relative = Path(real).relative_to(data_dir) if _is_under(real, data_dir) else None
    if relative is not None and (len(relative.parts) <= 1 or relative.parts[0] in GATEWAY_FOLDERS):
        raise ConnectionRefused(
            "A job cannot use a file of the gateway's data directory outside the jobs' folders."
        )


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def _protected_names() -> tuple[tuple[str, ...], str]:
    """The gateway's SQLite database names, as configured, and its data directory."""
    names = []
    for database in own_databases():
        if "sqlite" not in str(database.get("ENGINE", "")):
            continue
        for name in (database.get("NAME"), (database.get("TEST") or {}).get("NAME")):
            if name and str(name) != ":memory:" and not str(name).startswith("file:"):
                names.append(str(name))
    return tuple(sorted(set(names))), str(settings.DATA_DIR)


@functools.lru_cache(maxsize=16)
def _protected_paths(names: tuple[str, ...], data_dir: str) -> tuple[tuple[str, ...], str]:
    """Resolved paths of the database files (with WAL/SHM/journal) and the secret files.

    Cached by configuration: resolving costs a system call per path component, and a connect
    would otherwise pay it for every protected file. Identities (device, inode) are read fresh
    at every check, since a file can be replaced under the same name.
    """
    resolved = {os.path.realpath(name) for name in names}
    files = {name + side for name in resolved for side in ("", *_SQLITE_SIDE_FILES)}
    files.update(os.path.realpath(Path(data_dir) / n) for n in ("fernet.key", "django-secret.key"))
    return tuple(sorted(files)), os.path.realpath(data_dir)


def sqlite_connector(target: SqliteTarget, timeout: float) -> Callable[[], sqlite3.Connection]:
    """A connect function for SQLAlchemy's `creator`: checks the file again at every connect.

    The check is repeated because the file at a path can change between runs (a rename, a new
    symlink); the engine is never pooled, so each run opens the file that is there now.
    """

    def connect() -> sqlite3.Connection:
        if target.path != ":memory:":
            check_sqlite_file(target.path)
        connection = sqlite3.connect(
            target.uri(), uri=True, timeout=timeout, check_same_thread=False
        )
        try:
            _check_opened(connection, target)
            connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            connection.set_authorizer(job_authorizer)
        except BaseException:
            connection.close()
            raise
        return connection

    return connect


def _check_opened(connection: sqlite3.Connection, target: SqliteTarget) -> None:
    # What SQLite really opened (a path component swapped for a symlink after the check
    # would show here): the main database's file, checked like the requested one.
    for _, schema, filename in connection.execute("PRAGMA database_list").fetchall():
        if schema == "main" and filename:
            check_sqlite_file(filename)


# SQLite actions a job's SQL may never take on its connection.
_DENIED_ACTIONS = {sqlite3.SQLITE_ATTACH: "ATTACH", sqlite3.SQLITE_DETACH: "DETACH"}
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})
# writable_schema is the only way to write sqlite_master directly; the others change where or
# how SQLite stores files or whether schema code is trusted.
_DENIED_PRAGMAS = frozenset(
    {"writable_schema", "trusted_schema", "temp_store_directory", "data_store_directory"}
)


def job_authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    """sqlite3 authorizer of job connections: no ATTACH/DETACH (nor VACUUM INTO, which is one),
    no extension loading, no writable schema; everything else the job's SQL needs."""
    if action in _DENIED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _DENIED_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


# -- PostgreSQL and MySQL/MariaDB --------------------------------------------------------------


def check_server(url: URL) -> None:
    """Refuse a server connection that reaches the gateway's own database.

    PostgreSQL: same server (resolved addresses, port) and same database name. MySQL/MariaDB:
    same server at all, since one session there can read every database of the server.
    """
    check_options(url)
    backend = url.get_backend_name()
    family = "mysql" if backend in ("mysql", "mariadb") else backend
    port = url.port or _DEFAULT_PORTS.get(family, 0)
    for database in own_databases():
        engine = str(database.get("ENGINE", ""))
        own_family = (
            "postgresql" if "postgres" in engine else "mysql" if "mysql" in engine else None
        )
        if own_family is None:
            continue
        own_port = int(database.get("PORT") or _DEFAULT_PORTS[own_family])
        if own_port != port or not same_host(url.host or "", str(database.get("HOST") or "")):
            continue
        if family == "mysql" or own_family == "mysql":
            raise ConnectionRefused(
                "A job cannot connect to the MySQL/MariaDB server that holds the gateway's "
                "own database."
            )
        names = _own_database_names(database)
        if (url.database or url.username or "").casefold() in names:
            raise ConnectionRefused("A job cannot use the gateway's own database.")


def _own_database_names(database: dict[str, Any]) -> set[str]:
    name = str(database.get("NAME") or "")
    test = str((database.get("TEST") or {}).get("NAME") or "")
    return {n.casefold() for n in (name, test, f"test_{name}") if n}


def same_host(a: str, b: str) -> bool:
    """Whether two host names reach the same machine: equal resolved addresses, or both local."""
    first, second = _addresses(a), _addresses(b)
    if first & second:
        return True
    return _is_local(first) and _is_local(second)


def _addresses(host: str) -> set[str]:
    if not host or host.startswith("/"):  # a Unix socket: this machine
        return {"127.0.0.1"}
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return {host.lower()}
    return {str(info[4][0]).split("%")[0] for info in found}


def _is_local(addresses: set[str]) -> bool:
    local = _local_addresses()
    for address in addresses:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            continue
        if parsed.is_loopback or parsed.is_unspecified or address in local:
            return True
    return False


def _local_addresses() -> set[str]:
    # This machine's own addresses reach a server listening on all interfaces, as loopback does.
    try:
        return {
            str(info[4][0]).split("%")[0]
            for info in socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
        }
    except OSError:
        return set()

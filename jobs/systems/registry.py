"""Which connector serves a job's connection: systems are registered here, by kind, in code.

Adding a kind of system is adding its package under jobs/systems/ and naming its System in
`CONNECTORS`, under its ConnectionType.
"""

from __future__ import annotations

import importlib
import threading

from jobs.connections import resolve
from jobs.models import ConnectionType
from jobs.sync.spec import ReaderSpec, WriterSpec
from jobs.systems.base import Connection, Reader, System, UnsupportedSystem, Writer

# Each kind's System, as "package:class". A package is imported when its kind is first used,
# not with the registry: importing one loads its libraries (pyarrow and fsspec, httpx and lxml,
# the broker clients), and a process mostly opens one or two kinds (docs/decisions.md,
# "Connector libraries load on first use"; the database connector comes with jobs.connections).
CONNECTORS: dict[str, str] = {
    ConnectionType.DB.value: "jobs.systems.db:DatabaseSystem",
    ConnectionType.HTTP.value: "jobs.systems.http:HttpSystem",
    ConnectionType.DRIVE.value: "jobs.systems.drive:DriveSystem",
    ConnectionType.MESSAGING.value: "jobs.systems.messaging:MessagingSystem",
}
_SYSTEMS: dict[str, System] = {}
_LOADING = threading.Lock()

_KIND_NAMES = {kind.value: kind.label for kind in ConnectionType}


def _system(kind: str) -> System | None:
    """The System of `kind`, its package imported on the first call; None for no connector."""
    system = _SYSTEMS.get(kind)
    if system is None and kind in CONNECTORS:
        module, _, name = CONNECTORS[kind].partition(":")
        with _LOADING:  # engine threads of one process may open their first reader together
            if kind not in _SYSTEMS:
                _SYSTEMS[kind] = getattr(importlib.import_module(module), name)()
            system = _SYSTEMS[kind]
    return system


def system_for(connection: Connection, *, named: str = "") -> System:
    """The connector for `connection`; `named` is the kind the definition itself asks for."""
    kind = named or connection.kind
    if named and connection.key is not None and connection.kind != named:
        raise UnsupportedSystem(
            f"The definition reads a {_KIND_NAMES.get(named, named)} system but "
            f"{connection.describe()} is of type {connection.kind}."
        )
    system = _system(kind)
    if system is None:
        raise UnsupportedSystem(
            f"{_KIND_NAMES.get(kind, kind)} systems are not supported by this gateway yet "
            f"({connection.describe()}): there is no connector for them."
        )
    return system


def open_reader(spec: ReaderSpec) -> Reader:
    connection = resolve(spec.connection, kind=spec.source_kind)
    return system_for(connection, named=spec.source_kind).reader(connection, spec)


def open_writer(spec: WriterSpec, writer_guid: str) -> Writer:
    connection = resolve(spec.connection, kind=spec.target_kind)
    return system_for(connection, named=spec.target_kind).writer(connection, spec, writer_guid)


def check(connection: Connection) -> str:
    return system_for(connection).check(connection)

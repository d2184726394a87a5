"""Which connector serves a job's connection: systems are registered here, by kind, in code.

Adding a kind of system is adding its package under jobs/systems/ and its System to
`CONNECTORS` (each says its own ConnectionType in `kind`).
"""

from __future__ import annotations

from jobs.connections import resolve
from jobs.models import ConnectionType
from jobs.sync.spec import ReaderSpec, WriterSpec
from jobs.systems.base import Connection, Reader, System, UnsupportedSystem, Writer
from jobs.systems.db import DatabaseSystem
from jobs.systems.drive import DriveSystem
from jobs.systems.http import HttpSystem
from jobs.systems.messaging import MessagingSystem

CONNECTORS: tuple[System, ...] = (DatabaseSystem(), HttpSystem(), DriveSystem(), MessagingSystem())
SYSTEMS: dict[str, System] = {system.kind: system for system in CONNECTORS}

_KIND_NAMES = {kind.value: kind.label for kind in ConnectionType}


def system_for(connection: Connection, *, named: str = "") -> System:
    """The connector for `connection`; `named` is the kind the definition itself asks for."""
    kind = named or connection.kind
    if named and connection.key is not None and connection.kind != named:
        raise UnsupportedSystem(
            f"The definition reads a {_KIND_NAMES.get(named, named)} system but "
            f"{connection.describe()} is of type {connection.kind}."
        )
    system = SYSTEMS.get(kind)
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

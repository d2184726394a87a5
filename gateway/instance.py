"""One embedded gateway per data directory: an exclusive lock held for the process's life, and
the listening socket, both taken before Django loads the gateway.

`manage.py run` claims them first (`claim_before_setup`, called by manage.py before
`django.setup()`), so a second instance, or a port in use, costs one line and a fraction of a
second instead of the gateway's whole start-up (some 3 CPU-seconds of imports and system
checks, which on a loaded machine took over a minute before the lock was even looked at), and
nothing the live instance runs is touched (recovery, the purge of dynamic jobs). The lock is an
flock(2) on `gateway.lock`: the kernel drops it when the process dies, however it dies, so a
stale file never blocks a restart. The file says who holds it, for the second instance's
message.

This module is read before Django's apps are loaded: it may use settings, never models.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings

LOCK_NAME = "gateway.lock"


class DataDirectoryBusy(Exception):
    """Another live process holds the data directory's lock."""


class CannotListen(Exception):
    """The address to serve on cannot be bound (in use, or not ours)."""


class DataDirectoryLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self, serving: str) -> None:
        """Take the lock or raise DataDirectoryBusy naming its holder; `serving` is our URL."""
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that has not said who it is"
            handle.close()
            raise DataDirectoryBusy(
                f"Another gateway is running on data directory {self.path.parent}: {holder}. "
                "Stop it first, or give this one its own GATEWAY_DATA_DIR."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, serving {serving}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.truncate(0)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (handed to waitress), or CannotListen in one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CannotListen(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    try:
        # As waitress does for its own sockets: a restart binds despite connections of the
        # last run in TIME_WAIT; a port another process listens on still fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"Port {port} on {host} is already in use by another program; "
                "choose another with --port or GATEWAY_PORT."
            ) from None
        raise CannotListen(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    return sock


@dataclass
class Claim:
    """What `manage.py run` holds for its life: the data directory's lock and its socket."""

    lock: DataDirectoryLock
    sock: socket.socket
    host: str
    port: int

    def release(self) -> None:
        self.sock.close()
        self.lock.release()


def claim(host: str, port: int) -> Claim:
    """Lock the data directory, then bind the port; raises DataDirectoryBusy or CannotListen."""
    lock = DataDirectoryLock(settings.DATA_DIR)
    lock.acquire(f"http://{host}:{port}/")
    try:
        sock = bind(host, port)
    except CannotListen:
        lock.release()
        raise
    return Claim(lock, sock, host, port)


def add_address_arguments(parser: argparse.ArgumentParser) -> None:
    """`run`'s --host and --port: the command's parser and the early claim's share them."""
    parser.add_argument("--host", default=settings.GATEWAY_HOST)
    parser.add_argument("--port", type=int, default=settings.GATEWAY_PORT)


_early: Claim | None = None


def claim_before_setup(argv: list[str]) -> None:
    """For `manage.py run …`: claim the data directory and port before Django loads the
    gateway, or leave at once with one line. `run` then takes the claim (`take_early_claim`)."""
    global _early
    if {"-h", "--help"} & set(argv):
        return  # only the command's help is asked for
    # --settings chooses the data directory too: set it as Django would, before reading it.
    chosen = argparse.ArgumentParser(add_help=False)
    chosen.add_argument("--settings")
    if module := chosen.parse_known_args(argv)[0].settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = module
    parser = argparse.ArgumentParser(add_help=False)
    add_address_arguments(parser)
    options, _ = parser.parse_known_args(argv)
    try:
        _early = claim(options.host, options.port)
    except (DataDirectoryBusy, CannotListen) as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)


def take_early_claim(host: str, port: int) -> Claim | None:
    """The claim made before set-up for this address, once; None when there was none (the
    command called some other way, e.g. `call_command`)."""
    global _early
    early, _early = _early, None
    if early is not None and (early.host, early.port) != (host, port):
        early.release()
        return None
    return early

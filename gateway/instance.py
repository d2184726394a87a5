"""One embedded gateway per data directory: an exclusive lock held for the process's life.

`manage.py run` takes it before anything touches the data directory (recovery, the purge of
dynamic jobs, the port), so a second instance leaves at once instead of closing the live
one's executions. The lock is an flock(2) on `gateway.lock`: the kernel drops it when the
process dies, however it dies, so a stale file never blocks a restart. The file says who
holds it, for the second instance's message.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

LOCK_NAME = "gateway.lock"


class DataDirectoryBusy(Exception):
    """Another live process holds the data directory's lock."""


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

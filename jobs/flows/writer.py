"""The flow recorder's writer process: `python -m jobs.flows.writer FD`, started by
jobs.flows.recorder with one end of a socket pair as FD.

It reads the databases to use (the starting process's, pickled), sets Django up with them, then
writes each batch of finished runs it is sent and answers when it is written, until the socket
closes (the gateway stopped, or died).
"""

from __future__ import annotations

import pickle
import sys
from multiprocessing.connection import Connection


def main(fd: int) -> None:
    pipe = Connection(fd)
    try:
        databases = pickle.loads(pipe.recv_bytes())
    except EOFError:
        return
    import django
    from django.conf import settings

    settings.DATABASES = databases
    django.setup()
    from jobs.flows.recorder import write_forever

    write_forever(pipe)


if __name__ == "__main__":
    main(int(sys.argv[1]))

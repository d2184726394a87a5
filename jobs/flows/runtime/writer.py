"""The flow recorder's writer process: `python -m jobs.flows.runtime.writer FD`, started by
jobs.flows.runtime.recorder with one end of a socket pair as FD.

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
    # Imported here, not at the top: Django must get the starting process's databases before
    # anything reads its settings, and the recorder module needs the app registry ready.
    import django
    from django.conf import settings

    settings.DATABASES = databases
    django.setup()
    # Only now: importing the recorder imports the models.
    from jobs.flows.runtime.recorder import write_forever

    write_forever(pipe)


if __name__ == "__main__":
    main(int(sys.argv[1]))

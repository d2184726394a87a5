"""The DataFlux app; on the first request of the process, freezes the start-up heap for the GC."""

from __future__ import annotations

import gc
import threading
from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started

_frozen = threading.Event()


def freeze_startup_heap(**kwargs: Any) -> None:
    """Move everything alive at the first request out of the cyclic GC's reach, once.

    The gateway's modules, URL resolvers, engines and the worker's objects (about 100,000)
    are all in generation 2, and every full collection walked them again: 50-78 ms of wall
    time with the whole interpreter stopped, every 1.5-5 s under bench/realtime.py, which was
    the real-time p99. Frozen, a full collection walks only what was allocated since.
    Nothing frozen is garbage (it is collected first), so this only costs the objects that
    would have lived for the whole process anyway.
    """
    if _frozen.is_set():
        return
    _frozen.set()
    request_started.disconnect(freeze_startup_heap)
    gc.collect()
    gc.freeze()


class DatafluxConfig(AppConfig):
    name = "dataflux"
    verbose_name = "SAS DataFlux Real-Time Data Job REST API"

    def ready(self) -> None:
        request_started.connect(freeze_startup_heap, weak=False)

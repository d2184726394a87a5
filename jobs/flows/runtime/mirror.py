"""A fleet worker's engines, mirrored into `FlowEngine` rows by a thread of the worker process.

Web processes list a fleet's engines from these rows, and ask for changes through them:
`DELETE /engines/{id}` flags a row in use (`unload_requested`) or deletes an idle one,
`onCompletion` sets `on_completion`, deleting a flow detaches its rows (`job` becomes NULL).

A run never waits for the database on the worker's side: leasing or releasing an engine only
wakes the mirror thread, which writes what changed (who uses the engine, until when) a moment
later, and reads back what the web asked for, acting on it in the pool: an engine whose row
is gone or flagged is unloaded (stopped, if running), one whose flow was deleted is unloaded
once idle, `on_completion` is taken over. Writing two rows per run, on the run's path, was a
third of the worker's CPU per real-time run. So a listing lags the engines by about
DEBOUNCE_SECONDS (a run shorter than that may never show as in use), and a request from the
web takes effect within POLL_SECONDS.

Every HEARTBEAT_SECONDS the thread also stamps its rows' `seen_at`; rows nobody stamped for
STALE_SECONDS belong to a worker process that died without deleting them, and are not listed
(`stale_before`) and deleted by the next mirror that looks.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING

from django.db import connection
from django.utils import timezone

from jobs.models import FlowEngine
from jobs.runner import worker_name

if TYPE_CHECKING:
    from jobs.flows.runtime.engines import Engine, EnginePool

logger = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.05
POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 3 * HEARTBEAT_SECONDS


def stale_before() -> dt.datetime:
    """Rows last stamped before this belong to a worker process that is gone."""
    return timezone.now() - dt.timedelta(seconds=STALE_SECONDS)


class EngineMirror:
    def __init__(self, pool: EnginePool) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._dead: list[int] = []
        # What each engine's row says, as last written: (user, deadline to the second).
        self._written: dict[int, tuple[str, int | None]] = {}
        self._thread: threading.Thread | None = None
        self._beat = time.monotonic()

    # -- what the pool calls ---------------------------------------------------------------

    def register(self, engine: Engine) -> int:
        """Write a newly loaded engine's row; its id becomes the engine's id everywhere."""
        row = FlowEngine.objects.create(
            job_id=engine.job_id,
            flow_name=engine.flow_name,
            host=worker_name(),
            loaded_at=engine.loaded_at,
            in_use_by=engine.in_use_by,
        )
        with self._lock:
            self._written[row.pk] = (engine.in_use_by, None)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flow-engine-mirror", daemon=True
                )
                self._thread.start()
        return row.pk

    def changed(self) -> None:
        """An engine was leased or released: its row is written soon."""
        self._changed.set()

    def forget(self, engine_id: int) -> None:
        """The engine was unloaded: its row is deleted soon. Safe under the pool's lock."""
        with self._lock:
            self._dead.append(engine_id)
        self._changed.set()

    def stop(self) -> None:
        """Write the last changes (rows of unloaded engines deleted) and stop the thread."""
        self._stopping.set()
        self._changed.set()
        thread = self._thread
        if thread is not None:
            thread.join(10)
        else:
            self.sync()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if self._changed.wait(POLL_SECONDS) and not self._stopping.is_set():
                time.sleep(DEBOUNCE_SECONDS)  # let the changes of a burst of runs gather
            self._changed.clear()
            try:
                self.sync()
            except Exception:  # the next round tries again
                logger.exception("could not mirror the flow engines")
                connection.close()
            if self._stopping.is_set():
                connection.close()
                return

    def sync(self) -> None:
        """One round: delete unloaded engines' rows, act on the web's requests, write states."""
        with self._lock:
            dead, self._dead = self._dead, []
        if dead:
            FlowEngine.objects.filter(pk__in=dead).delete()
            with self._lock:
                for engine_id in dead:
                    self._written.pop(engine_id, None)
        engines = self.pool.snapshot()
        if not engines:
            return
        mine = FlowEngine.objects.filter(pk__in=[engine[0] for engine in engines])
        if time.monotonic() - self._beat >= HEARTBEAT_SECONDS:
            self._beat = time.monotonic()
            mine.update(seen_at=timezone.now())
            FlowEngine.objects.filter(seen_at__lt=stale_before()).delete()
        rows = {
            pk: (job_id, unload, on_completion)
            for pk, job_id, unload, on_completion in mine.values_list(
                "pk", "job_id", "unload_requested", "on_completion"
            )
        }
        for engine_id, job_id, user, deadline in engines:
            row = rows.get(engine_id)
            if row is None or row[1]:
                self.pool.unload(engine_id)
                continue
            if row[0] is None:
                self.pool.forget_job(job_id)
                continue
            self.pool.set_on_completion(engine_id, row[2])
            state = (user, None if deadline is None else round(deadline))
            if self._written.get(engine_id) != state:
                until = None
                if deadline is not None:
                    until = timezone.now() + dt.timedelta(seconds=deadline - time.monotonic())
                FlowEngine.objects.filter(pk=engine_id).update(in_use_by=user, run_deadline=until)
                with self._lock:
                    self._written[engine_id] = state

"""The engine pool: flows compiled once per engine, reused, capped, queued, timed and unloaded.

One pool per engine host: the gateway process on the embedded default, each Celery worker
process on the fleet. Fleet pools mirror their engines into `FlowEngine` rows so the web
processes can list them and ask for one to be unloaded.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from jobs.flows.errors import EngineBusy, EngineStopped, FlowError, FlowGone, RunTimeout
from jobs.flows.language.compiler import CompiledFlow, compile_flow
from jobs.flows.runtime.mirror import EngineMirror, stale_before
from jobs.models import EngineCompletion, FlowEngine, Job, JobKind

logger = logging.getLogger(__name__)

# How deep flow references may nest (a flow referring to itself is caught before that).
MAX_REFERENCE_DEPTH = 8


def is_embedded() -> bool:
    """Engines live in this process when the broker is the in-memory one (`make run`)."""
    return settings.CELERY_BROKER_URL.startswith("memory://")


@dataclass
class Engine:
    id: int
    job_id: int
    flow_name: str
    version: Any
    flow: CompiledFlow | None
    loaded_at: dt.datetime
    in_use_by: str = ""
    deadline: float | None = None
    on_completion: str = EngineCompletion.KEEP
    stop_requested: bool = False
    runs: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def compiled(self) -> CompiledFlow:
        """The loaded flow; a leased engine always has one (None only while compiling)."""
        if self.flow is None:
            raise FlowError(f"engine {self.id} has no flow loaded")
        return self.flow

    @property
    def busy(self) -> bool:
        return bool(self.in_use_by) or self.flow is None

    def describe_run(self) -> str:
        """The run's first log line: which engine, and whether it compiled the flow for it."""
        if self.runs == 0:
            return (
                f"Flow {self.flow_name} loaded into engine {self.id} "
                f"(compiled in {self.compiled.compile_seconds * 1000:.1f} ms)"
            )
        return f"Flow {self.flow_name} runs on engine {self.id} (run {self.runs + 1})"

    def run(
        self,
        inputs: dict[str, Any] | None,
        seconds: float | None,
        log: Callable[[str], None],
        cancelled: Callable[[], bool],
    ) -> dict[str, Any] | None:
        """Run the loaded flow; a stop or the time limit is raised as the API names it."""
        try:
            outputs = self.compiled.run(
                inputs, deadline=self.deadline, log=log, cancelled=cancelled
            )
        except RunTimeout:
            if self.stop_requested:
                raise EngineStopped(
                    f"Engine {self.id} was unloaded while it ran the flow."
                ) from None
            raise RunTimeout(
                f"The run of {self.flow_name!r} went past its maximum of {seconds:g} seconds "
                "and was stopped."
                if seconds
                else f"The run of {self.flow_name!r} was stopped."
            ) from None
        if self.stop_requested:
            raise EngineStopped(f"Engine {self.id} was unloaded while it ran the flow.")
        return outputs

    def max_seconds_left(self) -> int | None:
        if self.deadline is None or not self.in_use_by:
            return None
        return max(0, int(self.deadline - time.monotonic()))


@dataclass(frozen=True)
class EngineInfo:
    """What the API shows of an engine, wherever it lives."""

    id: int
    flow_name: str
    loaded_at: dt.datetime
    in_use_by: str
    max_seconds_left: int | None
    on_completion: str


def version_of(job: Job) -> str:
    """Which save of the flow an engine compiled: every save moves `updated_at`."""
    return job.updated_at.isoformat() if job.updated_at else ""


def load_referenced(
    name: str, line: int | None, stack: tuple[str, ...], seen: dict[str, str]
) -> CompiledFlow:
    """Compile a flow named in another flow's reference node, with its own references.

    `seen` collects each referenced flow's version, so a change to one replaces the engines
    of the flows that use it.
    """
    if name in stack:
        raise FlowError(f"flow reference cycle: {' → '.join((*stack, name))}", line)
    if len(stack) >= MAX_REFERENCE_DEPTH:
        raise FlowError(f"flow references nest deeper than {MAX_REFERENCE_DEPTH}", line)
    job = Job.objects.filter(kind=JobKind.FLOW, is_dynamic=False, job_key=name).first()
    if job is None:
        raise FlowError(f"referenced flow {name!r} is not stored on the server", line)
    seen[name] = version_of(job)
    inner = (*stack, name)
    try:
        return compile_flow(
            name, job.content, lambda ref, ref_line: load_referenced(ref, ref_line, inner, seen)
        )
    except FlowError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise FlowError(f"referenced flow {name!r}{where}: {exc.message}", line) from None


def compile_job(job: Job) -> CompiledFlow:
    try:
        # Loaded now when the instance came without it (a run's lookup skips the XML).
        content = job.content
    except Job.DoesNotExist:
        raise FlowGone(f"The job flow {job.job_key!r} was deleted.") from None
    seen: dict[str, str] = {}
    flow = compile_flow(
        job.job_key,
        content,
        lambda ref, line: load_referenced(ref, line, (job.job_key,), seen),
    )
    flow.references = seen
    return flow


def references_current(flow: CompiledFlow) -> bool:
    """Whether every flow this one refers to is still stored as it was compiled."""
    if not flow.references:
        return True
    stored = dict(
        Job.objects.filter(
            kind=JobKind.FLOW, is_dynamic=False, job_key__in=list(flow.references)
        ).values_list("job_key", "updated_at")
    )
    return all(
        name in stored and stored[name].isoformat() == version
        for name, version in flow.references.items()
    )


class EnginePool:
    def __init__(
        self,
        *,
        per_flow: int,
        total: int,
        queue_size: int,
        wait_seconds: float,
        mirror: bool = False,
    ) -> None:
        self.per_flow = max(1, per_flow)
        self.total = max(1, total)
        self.queue_size = max(0, queue_size)
        self.wait_seconds = wait_seconds
        self.mirror = EngineMirror(self) if mirror else None
        self.engines: dict[int, Engine] = {}
        self.compiles = 0
        self._cond = threading.Condition()
        self._waiting = 0
        # Per flow, the requests waiting for one of its engines, first come first served.
        self._queues: dict[int, collections.deque[object]] = {}
        # Until its row gives it one, a fleet engine's id is negative: never a row's.
        self._ids = itertools.count(-1, -1) if mirror else itertools.count(1)
        self._gone: set[int] = set()

    # -- running ---------------------------------------------------------------------------

    @contextmanager
    def lease(self, job: Job, user: str, max_seconds: float | None) -> Iterator[Engine]:
        """An engine with the job's flow loaded, for one run by `user`."""
        engine = self._acquire(job, user)
        if not references_current(engine.compiled):
            # A flow it refers to changed: compile this one again, in a new engine.
            with self._cond:
                self._drop(engine)
                self._cond.notify_all()
            engine = self._acquire(job, user)
        engine.deadline = time.monotonic() + max_seconds if max_seconds else None
        if self.mirror is not None:
            self.mirror.changed()
        try:
            yield engine
        finally:
            self._release(engine)

    def _acquire(self, job: Job, user: str) -> Engine:
        """An engine for `job`, in the order the requests came.

        Requests that wait for a flow's engines queue up (`_queues`, one line per flow): a new
        request takes a free engine only when nobody waits before it. Without the line, a
        client that just finished and asked again took the engine its release had freed before
        the waiters woke up, and some requests waited for seconds (bench/realtime.py: a p99
        of 11 s with 8 clients on 4 engines).
        """
        version = version_of(job)
        waited_since: float | None = None
        ticket: object | None = None
        with self._cond:
            try:
                while True:
                    if job.pk in self._gone:
                        raise FlowGone(f"The job flow {job.job_key!r} was deleted.")
                    mine = [e for e in self.engines.values() if e.job_id == job.pk]
                    for engine in mine:
                        if not engine.busy and engine.version != version:
                            self._drop(engine)
                    line = self._queues.get(job.pk)
                    if not line or line[0] is ticket:
                        idle = [e for e in mine if not e.busy and e.version == version]
                        if idle:
                            engine = max(idle, key=lambda e: e.last_used)
                            engine.in_use_by = user or "anonymous"
                            return engine
                        mine = [e for e in self.engines.values() if e.job_id == job.pk]
                        if len(mine) < self.per_flow:
                            if len(self.engines) >= self.total:
                                self._evict_idle()
                            if len(self.engines) < self.total:
                                placeholder = self._new_engine(job, version, user)
                                break
                    if ticket is None:
                        if self._waiting >= self.queue_size:
                            raise EngineBusy(
                                f"All engines for {job.job_key!r} are busy and the queue is "
                                f"full ({self.queue_size} requests waiting); try again later."
                            )
                        ticket = object()
                        self._queues.setdefault(job.pk, collections.deque()).append(ticket)
                        waited_since = time.monotonic()
                    assert waited_since is not None
                    left = self.wait_seconds - (time.monotonic() - waited_since)
                    if left <= 0:
                        raise EngineBusy(
                            f"No engine for {job.job_key!r} became free within "
                            f"{self.wait_seconds:g} seconds; try again later."
                        )
                    self._waiting += 1
                    try:
                        self._cond.wait(left)
                    finally:
                        self._waiting -= 1
            finally:
                if ticket is not None:
                    self._leave_line(job.pk, ticket)
        # Compiling happens outside the lock: other flows' requests go on meanwhile.
        try:
            placeholder.flow = compile_job(job)
        except BaseException:
            with self._cond:
                self.engines.pop(placeholder.id, None)
                self._cond.notify_all()
            raise
        with self._cond:
            self.compiles += 1
        if self.mirror is not None:
            self._rekey(placeholder, self.mirror.register(placeholder))
        return placeholder

    def _leave_line(self, job_id: int, ticket: object) -> None:
        """Take a request out of its flow's line (under the lock) and let the next one look."""
        line = self._queues.get(job_id)
        if line is not None:
            with contextlib.suppress(ValueError):
                line.remove(ticket)
            if not line:
                del self._queues[job_id]
        self._cond.notify_all()

    def _new_engine(self, job: Job, version: str, user: str) -> Engine:
        engine = Engine(
            id=next(self._ids),
            job_id=job.pk,
            flow_name=job.job_key,
            version=version,
            flow=None,
            loaded_at=timezone.now(),
            in_use_by=user or "anonymous",
        )
        self.engines[engine.id] = engine
        return engine

    def _evict_idle(self) -> None:
        idle = [e for e in self.engines.values() if not e.busy]
        if idle:
            self._drop(min(idle, key=lambda e: e.last_used))

    def _drop(self, engine: Engine) -> None:
        """Forget the engine (under the lock); the mirror deletes its row."""
        self.engines.pop(engine.id, None)
        if self.mirror is not None:
            self.mirror.forget(engine.id)

    def _rekey(self, engine: Engine, engine_id: int) -> None:
        """The engine's row id becomes its id everywhere, so a web process can address it."""
        with self._cond:
            self.engines.pop(engine.id, None)
            engine.id = engine_id
            self.engines[engine.id] = engine

    def _release(self, engine: Engine) -> None:
        with self._cond:
            engine.runs += 1
            engine.in_use_by = ""
            engine.deadline = None
            engine.last_used = time.monotonic()
            unload = (
                engine.stop_requested
                or engine.on_completion == EngineCompletion.UNLOAD
                or engine.job_id in self._gone
            )
            if unload:
                self._drop(engine)
            self._cond.notify_all()
        if self.mirror is not None:
            self.mirror.changed()

    # -- managing --------------------------------------------------------------------------

    def preload(self, job: Job) -> Engine:
        """Load the job's flow into an idle engine now, so the first request does not compile."""
        with self.lease(job, "", None) as engine:
            pass
        return engine

    def unload(self, engine_id: int) -> bool:
        """Unload an engine; one that is running is stopped and unloaded when it returns."""
        with self._cond:
            engine = self.engines.get(engine_id)
            if engine is None:
                return False
            if engine.busy:
                engine.stop_requested = True
            else:
                self._drop(engine)
            self._cond.notify_all()
        return True

    def set_on_completion(self, engine_id: int, value: str) -> bool:
        with self._cond:
            engine = self.engines.get(engine_id)
            if engine is None:
                return False
            engine.on_completion = value
        return True

    def forget_job(self, job_id: int) -> None:
        """The flow was deleted: idle engines go now, running ones when they finish."""
        with self._cond:
            self._gone.add(job_id)
            for engine in list(self.engines.values()):
                if engine.job_id == job_id and not engine.busy:
                    self._drop(engine)
            self._cond.notify_all()

    def infos(self, flow_name: str | None = None) -> list[EngineInfo]:
        with self._cond:
            engines = sorted(self.engines.values(), key=lambda e: e.id)
        return [
            EngineInfo(
                e.id, e.flow_name, e.loaded_at, e.in_use_by, e.max_seconds_left(), e.on_completion
            )
            for e in engines
            if e.flow is not None and (flow_name is None or e.flow_name == flow_name)
        ]

    def snapshot(self) -> list[tuple[int, int, str, float | None]]:
        """Each loaded engine's id, flow (job id), user and deadline, for the mirror."""
        with self._cond:
            return [
                (e.id, e.job_id, e.in_use_by, e.deadline)
                for e in self.engines.values()
                if e.flow is not None and e.id > 0
            ]

    def clear(self) -> None:
        """Unload every engine; a fleet pool's rows are deleted before this returns."""
        with self._cond:
            for engine in list(self.engines.values()):
                self._drop(engine)
            self._gone.clear()
            self.compiles = 0
            self._cond.notify_all()
        if self.mirror is not None:
            self.mirror.stop()
            self.mirror = EngineMirror(self)


_pool: EnginePool | None = None
_pool_lock = threading.Lock()


def pool() -> EnginePool:
    """This process's engine pool, built from the settings on first use."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = EnginePool(
                    per_flow=settings.DATAFLUX_ENGINES_PER_FLOW,
                    total=settings.DATAFLUX_ENGINES_MAX,
                    queue_size=settings.DATAFLUX_QUEUE_SIZE,
                    wait_seconds=settings.DATAFLUX_QUEUE_WAIT_SECONDS,
                    mirror=not is_embedded(),
                )
    return _pool


def reset_pool() -> None:
    """Forget this process's pool; the next use builds one from the current settings."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.clear()
        _pool = None


# -- what the API layer calls, the same in both modes --------------------------------------


def list_engines(flow_name: str | None = None) -> list[EngineInfo]:
    if is_embedded():
        return pool().infos(flow_name)
    # Not the rows of a worker process that died without deleting them.
    rows = FlowEngine.objects.filter(seen_at__gte=stale_before())
    if flow_name is not None:
        rows = rows.filter(flow_name=flow_name)
    now = timezone.now()
    return [
        EngineInfo(
            row.pk,
            row.flow_name,
            row.loaded_at,
            row.in_use_by,
            max(0, int((row.run_deadline - now).total_seconds()))
            if row.run_deadline and row.in_use_by
            else None,
            row.on_completion,
        )
        for row in rows
        # Asked to unload, or idle with its flow deleted: gone within the mirror's poll.
        if not row.unload_requested and (row.job_id is not None or row.in_use_by)
    ]


def get_engine(engine_id: int) -> EngineInfo | None:
    return next((e for e in list_engines() if e.id == engine_id), None)


def unload_engine(engine_id: int) -> bool:
    if is_embedded():
        return pool().unload(engine_id)
    row = FlowEngine.objects.filter(pk=engine_id).first()
    if row is None:
        return False
    if row.in_use_by:
        FlowEngine.objects.filter(pk=engine_id).update(unload_requested=True)
    else:
        row.delete()
    return True


def set_on_completion(engine_id: int, value: str) -> bool:
    if is_embedded():
        return pool().set_on_completion(engine_id, value)
    return bool(FlowEngine.objects.filter(pk=engine_id).update(on_completion=value))


def forget_flow(job_id: int) -> None:
    """The flow was deleted: idle engines go now, running ones when they finish. On the fleet
    its engines' rows were detached with it (`job` NULL), which each worker's mirror acts on."""
    pool().forget_job(job_id)


def preload_configured_flows() -> list[str]:
    """Load the flows named in DATAFLUX_PRELOAD into this process's pool; returns what loaded."""
    loaded: list[str] = []
    for name in settings.DATAFLUX_PRELOAD:
        job = Job.objects.filter(kind=JobKind.FLOW, is_dynamic=False, job_key=name).first()
        if job is None:
            logger.warning("DATAFLUX_PRELOAD names %r, which is not a stored flow", name)
            continue
        try:
            pool().preload(job)
        except (FlowError, EngineBusy) as exc:
            logger.warning("could not preload flow %r: %s", name, exc)
            continue
        loaded.append(name)
    return loaded


_preloaded = False


def preload_once() -> None:
    """At a fleet worker process's first flow run, whichever task brings it: DATAFLUX_PRELOAD."""
    global _preloaded
    if not _preloaded:
        _preloaded = True
        preload_configured_flows()

"""A fleet worker's engines mirrored into FlowEngine rows (jobs.flows.runtime.mirror), in one
process: a pool with its mirror, and the web's side acting on the rows as another process would."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.flows.errors import EngineStopped
from jobs.flows.runtime.definitions import create_flow, delete_flow, flow_for_run
from jobs.flows.runtime.engines import EnginePool
from jobs.models import EngineCompletion, FlowEngine
from tests.test_dataflux_support import SLOW_FLOW, example_xml

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = {"dataTable": {"metadata": [{"name": "Name"}], "data": [["anna"]]}}


@pytest.fixture
def fleet_pool():
    pool = EnginePool(per_flow=2, total=4, queue_size=4, wait_seconds=5, mirror=True)
    yield pool
    pool.clear()


def _gender():
    create_flow("Determine_Gender.ddf", example_xml("Determine_Gender.ddf").encode())
    return flow_for_run("Determine_Gender.ddf")


def _run(pool, job, user="ann", inputs=NAMES):
    with pool.lease(job, user, 60) as engine:
        return engine.run(inputs, 60, log=lambda m: None, cancelled=lambda: engine.stop_requested)


def test_a_loaded_engine_has_a_row_and_runs_write_nothing_on_their_path(fleet_pool) -> None:
    # given a fleet pool that loaded a flow
    job = _gender()
    _run(fleet_pool, job)
    fleet_pool.mirror.sync()
    (row,) = FlowEngine.objects.all()
    assert (row.flow_name, row.in_use_by) == ("Determine_Gender.ddf", "")
    assert list(fleet_pool.engines) == [row.pk]
    # when it runs again on that engine
    with CaptureQueriesContext(connection) as queries:
        _run(fleet_pool, job)
    # then the run itself sent nothing to the database
    assert len(queries) == 0


def test_a_running_engine_shows_its_user_and_deadline_then_idle(fleet_pool) -> None:
    job = _gender()
    _run(fleet_pool, job)
    with fleet_pool.lease(job, "ann", 60) as engine:
        fleet_pool.mirror.sync()
        busy = FlowEngine.objects.get(pk=engine.id)
        assert busy.in_use_by == "ann" and busy.run_deadline is not None
    fleet_pool.mirror.sync()
    idle = FlowEngine.objects.get(pk=engine.id)
    assert (idle.in_use_by, idle.run_deadline) == ("", None)


def test_an_idle_engine_whose_row_the_web_deleted_is_unloaded(fleet_pool) -> None:
    job = _gender()
    _run(fleet_pool, job)
    # when a web process unloads it (an idle row is deleted)
    FlowEngine.objects.all().delete()
    fleet_pool.mirror.sync()
    # then the worker's pool no longer holds it, and the next run compiles again
    assert fleet_pool.engines == {}
    _run(fleet_pool, job)
    assert fleet_pool.compiles == 2


def test_a_running_engine_the_web_flags_is_stopped_and_its_row_goes(fleet_pool) -> None:
    # given a long run on a fleet engine
    create_flow("slow.ddf", SLOW_FLOW.encode())
    job = flow_for_run("slow.ddf")
    _run(fleet_pool, job, inputs={"x": 1})
    outcome: list[str] = []

    def long_run() -> None:
        try:
            with fleet_pool.lease(job, "ann", 60) as engine:
                give_up = time.monotonic() + 20
                while time.monotonic() < give_up:
                    engine.run({"x": 1}, 60, log=lambda m: None, cancelled=lambda: False)
                    if engine.stop_requested:
                        raise EngineStopped("stopped")
            outcome.append("finished")
        except EngineStopped:
            outcome.append("stopped")
        finally:
            connection.close()

    thread = threading.Thread(target=long_run)
    thread.start()
    deadline = time.monotonic() + 10
    while not FlowEngine.objects.filter(in_use_by="ann").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # when a web process asks for its unload
    FlowEngine.objects.update(unload_requested=True)
    thread.join(30)
    # then the run is stopped, the engine unloaded and its row deleted
    assert outcome == ["stopped"]
    fleet_pool.mirror.sync()
    assert fleet_pool.engines == {}
    assert not FlowEngine.objects.exists()


def test_a_deleted_flow_unloads_its_idle_engines(fleet_pool) -> None:
    job = _gender()
    _run(fleet_pool, job)
    delete_flow(job)  # its engine rows are detached (job NULL), as a web process leaves them
    fleet_pool.mirror.sync()
    fleet_pool.mirror.sync()
    assert fleet_pool.engines == {}
    assert not FlowEngine.objects.exists()


def test_on_completion_set_by_the_web_unloads_after_the_next_run(fleet_pool) -> None:
    job = _gender()
    _run(fleet_pool, job)
    FlowEngine.objects.update(on_completion=EngineCompletion.UNLOAD)
    fleet_pool.mirror.sync()
    assert len(fleet_pool.engines) == 1  # kept until its next run ends
    _run(fleet_pool, job)
    assert fleet_pool.engines == {}
    fleet_pool.mirror.sync()
    assert not FlowEngine.objects.exists()


def test_clearing_the_pool_deletes_its_rows(fleet_pool) -> None:
    _run(fleet_pool, _gender())
    assert FlowEngine.objects.count() == 1
    fleet_pool.clear()
    assert not FlowEngine.objects.exists()


def test_rows_of_a_dead_worker_are_not_listed_and_go_at_the_next_heartbeat(
    fleet_pool, settings, monkeypatch
) -> None:
    # given a row left by a worker process killed 40 s ago, and a live worker's engine
    import datetime as dt

    from django.utils import timezone

    from jobs.flows.runtime import engines, mirror

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"  # the web's view of a fleet
    job = _gender()
    ghost = FlowEngine.objects.create(
        job_id=job.pk,
        flow_name="Determine_Gender.ddf",
        host="gone:1",
        seen_at=timezone.now() - dt.timedelta(seconds=40),
    )
    _run(fleet_pool, job)
    fleet_pool.mirror.sync()
    # then listings show only the live engine
    assert [info.id for info in engines.list_engines()] == list(fleet_pool.engines)
    # and the live worker's next heartbeat deletes the ghost and stamps its own row
    monkeypatch.setattr(mirror, "HEARTBEAT_SECONDS", 0.0)
    before = FlowEngine.objects.get(pk=next(iter(fleet_pool.engines))).seen_at
    fleet_pool.mirror.sync()
    assert not FlowEngine.objects.filter(pk=ghost.pk).exists()
    assert FlowEngine.objects.get().seen_at > before

"""Engines: compiled once and reused, listed, capped, timed, unloaded, kept or not, preloaded."""

from __future__ import annotations

import threading
import time

import pytest
from django.test import override_settings

from jobs.flows.errors import EngineBusy, FlowGone
from jobs.flows.runtime.definitions import flow_id, get_flow
from jobs.flows.runtime.engines import EnginePool, pool, preload_configured_flows
from jobs.models import Execution, Job, LogEntry
from tests.test_dataflux_support import (
    BASE,
    SLOW_FLOW,
    basic_client,
    example_xml,
    execute,
    fresh_state,
    make_user,
    upload,
)

# Seconds: the recorder's writer process starts Django first, which a loaded machine took
# more than flush()'s default 10 s to do; a real hang still fails.
RECORDER_WAIT = 120.0
GENDER = flow_id("Determine_Gender.ddf")
NAMES = {"dataTable": {"metadata": [{"name": "Name", "type": "string"}], "data": [["anna"]]}}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_state()


@pytest.fixture
def client(db: None):
    make_user("ann")
    c = basic_client("ann")
    upload(c, "Determine_Gender.ddf")
    return c


def engines(client, query: str = "") -> dict:
    return client.get(f"{BASE}/engines{query}").json()


def test_second_execution_reuses_the_engine(client) -> None:
    # when
    first = execute(client, GENDER, NAMES)
    second = execute(client, GENDER, NAMES)
    # then
    assert first.json()["outputs"] == second.json()["outputs"]
    assert pool().compiles == 1
    assert engines(client)["count"] == 1
    logs = [e.message for e in LogEntry.objects.order_by("execution_id", "sequence")]
    assert "loaded into engine 1" in logs[0]
    assert "runs on engine 1 (run 2)" in logs[1]


def test_engine_shape_and_links(client) -> None:
    execute(client, GENDER, NAMES)
    body = engines(client)
    assert (body["version"], body["name"], body["count"]) == (1, "items", 1)
    engine = body["items"][0]
    assert engine["id"] == 1
    assert engine["jobFlowId"] == GENDER
    assert engine["jobFlowName"] == "Determine_Gender.ddf"
    assert len(engine["loadTime"]) == len("20141222T15:10:15")
    assert "inUseBy" not in engine and "maxSecondsLeft" not in engine
    assert [(link["rel"], link["method"], link["uri"]) for link in engine["links"]] == [
        ("jobFlow", "GET", f"/jobFlowDefns/{GENDER}"),
        ("self", "GET", "/engines/1"),
        ("delete", "DELETE", "/engines/1"),
        ("updateCompletion", "PUT", "/engines/1/onCompletion"),
    ]
    assert [(link["rel"], link["method"]) for link in body["links"]] == [
        ("up", "GET"),
        ("delete", "DELETE"),
        ("updateCompletion", "PUT"),
    ]
    single = client.get(f"{BASE}/engines/1")
    assert single["Content-Type"] == "application/vnd.sas.collection+json"
    assert single.json()["items"] == [engine]
    assert client.get(f"{BASE}/engines/99").status_code == 404


def test_engines_by_name_and_per_flow(client) -> None:
    upload(client, "waiter.dmc", "<flow/>")
    execute(client, GENDER, NAMES)
    execute(client, flow_id("waiter.dmc"), {})
    assert engines(client)["count"] == 2
    by_name = engines(client, "?name=Determine_Gender.ddf")
    assert [e["jobFlowName"] for e in by_name["items"]] == ["Determine_Gender.ddf"]
    assert engines(client, "?name=nothing.ddf") == {
        "version": 1,
        "name": "items",
        "count": 0,
        "items": [],
        "links": [engines(client)["links"][0]],
    }
    per_flow = client.get(f"{BASE}/jobFlowDefns/{GENDER}/engines").json()
    assert [e["jobFlowName"] for e in per_flow["items"]] == ["Determine_Gender.ddf"]


def test_running_engine_shows_user_and_seconds_left(client) -> None:
    job = get_flow("Determine_Gender.ddf")
    with pool().lease(job, "sanovo", 42):
        engine = engines(client)["items"][0]
    assert engine["inUseBy"] == "sanovo"
    assert 40 <= engine["maxSecondsLeft"] <= 42


@override_settings(DATAFLUX_ENGINES_PER_FLOW=1, DATAFLUX_QUEUE_WAIT_SECONDS=0.2)
def test_request_beyond_the_cap_waits_then_gets_a_clear_error(client) -> None:
    # given the only engine allowed for the flow is busy
    fresh_state()
    job = get_flow("Determine_Gender.ddf")
    with pool().lease(job, "someone", None):
        started = time.monotonic()
        # when
        response = execute(client, GENDER, NAMES)
    # then
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 503
    assert "became free within 0.2 seconds" in response.json()["message"]
    assert execute(client, GENDER, NAMES).status_code == 200


@override_settings(DATAFLUX_ENGINES_PER_FLOW=1, DATAFLUX_QUEUE_SIZE=0)
def test_full_queue_is_refused_at_once(client) -> None:
    fresh_state()
    with pool().lease(get_flow("Determine_Gender.ddf"), "someone", None):
        response = execute(client, GENDER, NAMES)
    assert response.status_code == 503
    assert "queue is full" in response.json()["message"]


def test_queued_request_runs_when_an_engine_frees() -> None:
    # given a pool with one engine and a job held by another run
    capped = EnginePool(per_flow=1, total=1, queue_size=4, wait_seconds=5)
    job = Job(pk=1, job_key="g.ddf", content=example_xml("Determine_Gender.ddf"))
    order: list[str] = []
    lease = capped.lease(job, "first", None)
    lease.__enter__()

    def second() -> None:
        with capped.lease(job, "second", None) as engine:
            order.append(f"second on {engine.id}")

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.1)
    order.append("first done")
    # when
    lease.__exit__(None, None, None)
    thread.join(5)
    # then
    assert order == ["first done", "second on 1"]
    assert capped.compiles == 1


def test_total_cap_unloads_an_idle_engine_of_another_flow() -> None:
    capped = EnginePool(per_flow=2, total=1, queue_size=0, wait_seconds=0)
    first = Job(pk=1, job_key="a.ddf", content="<flow/>")
    other = Job(pk=2, job_key="b.ddf", content="<flow/>")
    with capped.lease(first, "u", None):
        pass
    with capped.lease(other, "u", None):
        assert [i.flow_name for i in capped.infos()] == ["b.ddf"]
        with pytest.raises(EngineBusy), capped.lease(first, "u", None):
            pass


def test_run_past_its_time_limit_is_stopped(client) -> None:
    # given
    upload(client, "slow.ddf", SLOW_FLOW)
    rows = {
        "dataTable": {
            "metadata": [{"name": "x", "type": "integer"}],
            "data": [[n] for n in range(4000)],
        }
    }
    # when
    started = time.monotonic()
    response = execute(client, flow_id("slow.ddf") + "?maxSeconds=0.2", rows)
    # then
    assert time.monotonic() - started < 2
    assert response.status_code == 504
    assert "maximum of 0.2 seconds" in response.json()["message"]
    assert Execution.objects.get().status == "failed"


def test_delete_engine_unloads_it(client) -> None:
    execute(client, GENDER, NAMES)
    assert client.delete(f"{BASE}/engines/1").status_code == 204
    assert engines(client)["count"] == 0
    assert client.delete(f"{BASE}/engines/1").status_code == 404
    execute(client, GENDER, NAMES)
    assert pool().compiles == 2


def test_delete_engine_while_running_stops_and_unloads_it(client) -> None:
    job = get_flow("Determine_Gender.ddf")
    with pool().lease(job, "someone", None) as engine:
        assert client.delete(f"{BASE}/engines/{engine.id}").status_code == 204
        assert engine.stop_requested
    assert engines(client)["count"] == 0


def test_on_completion_unload_drops_the_engine_after_its_run(client) -> None:
    execute(client, GENDER, NAMES)
    response = client.put(f"{BASE}/engines/1/onCompletion", "unload", content_type="text/plain")
    assert response.status_code == 200
    assert response.json()["items"][0]["onCompletion"] == "unload"
    assert engines(client)["count"] == 1
    execute(client, GENDER, NAMES)
    assert engines(client)["count"] == 0


def test_on_completion_rejects_unknown_values(client) -> None:
    execute(client, GENDER, NAMES)
    response = client.put(f"{BASE}/engines/1/onCompletion", "explode", content_type="text/plain")
    assert response.status_code == 400
    assert "keep" in response.json()["message"]


def test_collection_level_delete_and_on_completion(client) -> None:
    upload(client, "waiter.dmc", "<flow/>")
    execute(client, GENDER, NAMES)
    execute(client, flow_id("waiter.dmc"), {})
    put = client.put(
        f"{BASE}/engines/onCompletion?name=waiter.dmc", "unload", content_type="text/plain"
    )
    assert [e["onCompletion"] for e in put.json()["items"]] == ["unload"]
    assert client.delete(f"{BASE}/engines?name=Determine_Gender.ddf").status_code == 204
    assert [e["jobFlowName"] for e in engines(client)["items"]] == ["waiter.dmc"]
    assert client.delete(f"{BASE}/engines").status_code == 204
    assert engines(client)["count"] == 0


def test_new_content_gets_a_new_engine(client) -> None:
    execute(client, GENDER, NAMES)
    replaced = example_xml("Determine_Gender.ddf").replace(
        '<gender field="Name" from="full" output="Gender"/>',
        "<expression><field name=\"Gender\">'W'</field></expression>",
    )
    client.put(f"{BASE}/jobFlowDefns/{GENDER}/content", replaced, content_type="text/xml")
    response = execute(client, GENDER, NAMES)
    assert response.json()["outputs"]["dataTable"]["data"] == [["Anna", "W"]]
    assert pool().compiles == 2
    assert engines(client)["count"] == 1


def test_deleting_a_flow_lets_a_running_engine_finish(client) -> None:
    job = get_flow("Determine_Gender.ddf")
    with pool().lease(job, "someone", None) as engine:
        assert client.delete(f"{BASE}/jobFlowDefns/{GENDER}").status_code == 204
        assert engine.flow.run(NAMES)["dataTable"]["data"] == [["Anna", "F"]]
    assert engines(client)["count"] == 0


def test_configured_flows_are_preloaded(client) -> None:
    with override_settings(DATAFLUX_PRELOAD=["Determine_Gender.ddf", "missing.ddf"]):
        assert preload_configured_flows() == ["Determine_Gender.ddf"]
    assert engines(client)["count"] == 1
    execute(client, GENDER, NAMES)
    assert pool().compiles == 1


def test_engine_management_needs_permission(client) -> None:
    execute(client, GENDER, NAMES)
    make_user("lee", permissions=("view_job",))
    lee = basic_client("lee")
    assert lee.get(f"{BASE}/engines").json()["count"] == 1
    assert lee.delete(f"{BASE}/engines/1").status_code == 403
    put = lee.put(f"{BASE}/engines/1/onCompletion", "unload", content_type="text/plain")
    assert put.status_code == 403
    assert engines(client)["count"] == 1


def test_request_waiting_for_a_deleted_flow_is_told_it_is_gone() -> None:
    # given a request queued behind the only engine of a flow
    capped = EnginePool(per_flow=1, total=1, queue_size=4, wait_seconds=5)
    job = Job(pk=7, job_key="gone.ddf", content="<flow/>")
    outcome: list[str] = []

    def waiter() -> None:
        try:
            with capped.lease(job, "second", None):
                outcome.append("ran")
        except FlowGone as exc:
            outcome.append(str(exc))

    with capped.lease(job, "first", None):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.1)
        # when the flow is deleted
        capped.forget_job(job.pk)
        thread.join(5)
    # then the waiter leaves the queue with "deleted" (the API answers 404)
    assert outcome == ["The job flow 'gone.ddf' was deleted."]
    assert capped.infos() == []


@pytest.mark.django_db(transaction=True)
def test_runs_are_recorded_off_the_request_path_even_if_the_flow_goes() -> None:
    # given a request outside any transaction, as under the real server
    from jobs.flows.runtime import recorder

    make_user("ann")
    client = basic_client("ann")
    upload(client, "Determine_Gender.ddf")
    # when it runs and the flow is deleted before the recorder writes
    assert execute(client, GENDER, NAMES).status_code == 200
    client.delete(f"{BASE}/jobFlowDefns/{GENDER}")
    # then the run is recorded, detached from the deleted flow
    assert recorder.flush(RECORDER_WAIT)
    execution = Execution.objects.get()
    assert (execution.job_id, execution.job_key, execution.status) == (
        None,
        "Determine_Gender.ddf",
        "succeeded",
    )
    assert LogEntry.objects.filter(execution=execution).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_runs_keeps_each_runs_log_lines_with_it() -> None:
    # given three finished runs handed to the recorder thread together
    from django.utils import timezone

    from jobs.flows.runtime import recorder

    now = timezone.now()
    runs = [
        {
            "guid": f"run-{n}",
            "job_id": None,
            "job_guid": f"job-{n}",
            "job_key": f"flow-{n}.ddf",
            "listener_type": "flow",
            "status": "succeeded",
            "success": True,
            "record_count": n,
            "created_on": now,
            "finished_at": now,
        }
        for n in range(3)
    ]
    for n, run in enumerate(runs):
        recorder.record(recorder.Record(run, [(20, f"run {n} line {i}") for i in range(n + 1)]))
    # when the recorder writes them
    assert recorder.flush(RECORDER_WAIT)
    # then every log line belongs to its own run, numbered from 1, stamped with its end
    for n, run in enumerate(runs):
        stored = Execution.objects.get(guid=run["guid"])
        lines = list(
            stored.log_entries.values_list("sequence", "message", "job_guid", "created_at")
        )
        assert lines == [(i + 1, f"run {n} line {i}", f"job-{n}", now) for i in range(n + 1)]


@pytest.mark.django_db(transaction=True)
def test_a_batch_written_again_does_not_double_its_runs() -> None:
    # given a batch the writer process wrote but died before confirming
    from django.utils import timezone

    from jobs.flows.runtime import recorder

    now = timezone.now()
    run = {
        "guid": "run-once",
        "job_id": None,
        "job_guid": "job",
        "job_key": "flow.ddf",
        "listener_type": "flow",
        "status": "succeeded",
        "success": True,
        "created_on": now,
        "finished_at": now,
    }
    batch = [recorder.Record(run, [(20, "one line")])]
    recorder._write(batch)
    # when the recorder thread writes it again
    recorder._write(batch)
    # then the run and its log line are there once
    assert Execution.objects.filter(guid="run-once").count() == 1
    assert LogEntry.objects.count() == 1


def test_a_waiting_request_gets_the_engine_before_a_newer_one(client) -> None:
    # given one engine for the flow, held, and a request waiting for it
    job = get_flow("Determine_Gender.ddf")
    single = EnginePool(per_flow=1, total=4, queue_size=8, wait_seconds=10)
    order: list[str] = []

    def waiting_request() -> None:
        with single.lease(job, "b", None):
            order.append("waiting request")
            time.sleep(0.1)

    with single.lease(job, "a", None):
        waiter = threading.Thread(target=waiting_request)
        waiter.start()
        deadline = time.monotonic() + 5
        while single._waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    # when the holder asks again at once, before the waiting thread has woken up
    with single.lease(job, "a", None):
        order.append("newer request")
    waiter.join()
    # then the request that waited went first
    assert order == ["waiting request", "newer request"]

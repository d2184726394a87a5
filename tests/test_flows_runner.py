"""A flow execution queued like any other job (the console's "Start now", a job trigger) runs
through the generic runner's flow work (registered in jobs/apps.py: jobs.flows.execute.run_flow),
which goes through Engine.run: the same outputs and the same error messages as an API call."""

from __future__ import annotations

import pytest

from jobs import runner
from jobs.flows.runtime.definitions import create_flow
from jobs.models import Execution, ExecutionStatus, Job, LogEntry
from jobs.services import new_execution
from tests.test_dataflux_support import SLOW_FLOW, example_xml, fresh_state

NAMES = {
    "dataTable": {
        "metadata": [{"name": "Name", "type": "string"}],
        "data": [["mary smith"], ["John Doe"]],
    }
}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    fresh_state()


def run_through_runner(job: Job, options: dict) -> Execution:
    queued = new_execution(job, options=options, requested_by="console")
    claimed = runner.claim(queued.pk)
    assert claimed is not None
    runner.run_claimed(claimed)
    return Execution.objects.get(pk=queued.pk)


def logs(execution: Execution) -> list[str]:
    return [e.message for e in LogEntry.objects.filter(execution=execution).order_by("sequence")]


def test_a_queued_flow_runs_and_records_its_outputs(db: None) -> None:
    # given
    job = create_flow("Determine_Gender.ddf", example_xml("Determine_Gender.ddf").encode())
    # when
    done = run_through_runner(job, {"inputs": NAMES})
    # then
    assert done.status == ExecutionStatus.SUCCEEDED
    table = done.result["outputs"]["dataTable"]
    assert [row[:2] for row in table["data"]] == [["Mary Smith", "F"], ["John Doe", "M"]]
    assert done.record_count == 2
    assert "loaded into engine" in logs(done)[0]


def test_a_bad_input_fails_with_the_message_a_client_gets(db: None) -> None:
    # given: the flow requires Name
    job = create_flow("Determine_Gender.ddf", example_xml("Determine_Gender.ddf").encode())
    # when
    done = run_through_runner(job, {})
    # then
    assert done.status == ExecutionStatus.FAILED
    assert done.result["error"]["kind"] == "input"
    assert done.error_message == done.result["error"]["message"]
    assert "dataTable" in done.error_message


def test_the_time_limit_is_reported_as_engine_run_words_it(db: None) -> None:
    # given
    job = create_flow("slow.ddf", SLOW_FLOW.encode())
    rows = {"metadata": [{"name": "x", "type": "integer"}], "data": [[n] for n in range(4000)]}
    # when
    done = run_through_runner(job, {"inputs": {"dataTable": rows}, "max_seconds": 0.2})
    # then
    assert done.status == ExecutionStatus.FAILED
    assert done.result["error"]["kind"] == "timeout"
    assert "went past its maximum of 0.2 seconds" in done.error_message


def test_a_stop_asked_through_the_runner_ends_it_as_cancelled(db: None) -> None:
    # given: a stop asked before the run's first check
    job = create_flow("slow.ddf", SLOW_FLOW.encode())
    rows = {"metadata": [{"name": "x", "type": "integer"}], "data": [[1]]}
    queued = new_execution(job, options={"inputs": {"dataTable": rows}})
    claimed = runner.claim(queued.pk)
    assert claimed is not None
    Execution.objects.filter(pk=queued.pk).update(cancel_requested=True)
    # when
    runner.run_claimed(claimed)
    # then
    done = Execution.objects.get(pk=queued.pk)
    assert done.status == ExecutionStatus.CANCELLED
    assert done.error_message == "Stopped on request while the flow ran."


def test_a_deleted_flow_fails_with_flow_gone(db: None) -> None:
    # given
    job = create_flow("Determine_Gender.ddf", example_xml("Determine_Gender.ddf").encode())
    queued = new_execution(job, options={"inputs": NAMES})
    claimed = runner.claim(queued.pk)
    assert claimed is not None
    claimed.job = None
    # when
    runner.run_claimed(claimed)
    # then
    done = Execution.objects.get(pk=queued.pk)
    assert done.status == ExecutionStatus.FAILED
    assert done.result["error"]["kind"] == "gone"
    assert "was deleted" in done.error_message

"""Job triggers: each kind, direct jobs, cycles, and the shapes clients send."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from jobs.agent import set_running
from jobs.models import Execution, ExecutionStatus, Job, JobKind, JobStatus, LogEntry
from jobs.runner import finish
from jobs.schedule.triggers import normalize_triggers, parse_triggers, validate_triggers
from jobs.services import new_execution

pytestmark = pytest.mark.django_db


def reader(key: str, triggers: list[Any] | None = None, enabled: bool = True, **fields: Any) -> Job:
    json_data = {"JobTriggers": triggers or [], "JobTriggersEnabled": enabled}
    definition = {"JobKey": key, "JsonData": json_data}
    return Job.objects.create(kind=JobKind.READER, job_key=key, definition=definition, **fields)


def run(
    job: Job, status: str, *, rows: int = 0, options: dict[str, Any] | None = None
) -> Execution:
    """A run of `job` that ends with `status`, through the runner's own finish()."""
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    execution = new_execution(job, options=options)
    Execution.objects.filter(pk=execution.pk).update(
        status=ExecutionStatus.RUNNING, record_count=rows
    )
    execution.refresh_from_db()
    finish(execution, status, "" if status == ExecutionStatus.SUCCEEDED else "boom")
    return execution


def started(job: Job) -> list[Execution]:
    return list(Execution.objects.filter(job=job).order_by("id"))


def log_of(execution: Execution) -> list[str]:
    return list(LogEntry.objects.filter(execution=execution).values_list("message", flat=True))


@pytest.fixture
def targets() -> dict[str, Job]:
    return {kind: reader(f"after-{kind}") for kind in ("completion", "success", "data", "failure")}


@pytest.fixture
def source(targets: dict[str, Job]) -> Job:
    # the four kinds, spelled as the vendor's UI labels them
    return reader(
        "source",
        [
            {"JobKey": "after-completion", "TriggerType": "On Completion"},
            {"JobKey": "after-success", "TriggerType": "On Success (always)"},
            {"Guid": targets["data"].guid, "TriggerType": "On Success (with data)"},
            {"JobKey": "after-failure", "TriggerType": "On Failure"},
        ],
    )


def fired(targets: dict[str, Job]) -> set[str]:
    return {kind for kind, job in targets.items() if started(job)}


def test_success_with_data_fires_completion_success_and_with_data(source, targets) -> None:
    execution = run(source, ExecutionStatus.SUCCEEDED, rows=12)
    assert fired(targets) == {"completion", "success", "data"}
    (child,) = started(targets["data"])
    assert child.options == {
        "trigger": "job-trigger",
        "trigger_type": "OnSuccessWithData",
        "triggered_by": execution.guid,
        "trigger_chain": [source.guid],
    }
    assert child.requested_by == "trigger:source"
    assert "Trigger OnSuccessWithData: started 'after-data'." in log_of(execution)


def test_success_without_data_does_not_fire_with_data(source, targets) -> None:
    run(source, ExecutionStatus.SUCCEEDED, rows=0)
    assert fired(targets) == {"completion", "success"}


def test_failure_fires_completion_and_failure(source, targets) -> None:
    run(source, ExecutionStatus.FAILED, rows=3)
    assert fired(targets) == {"completion", "failure"}


def test_a_cancelled_run_fires_nothing(source, targets) -> None:
    run(source, ExecutionStatus.CANCELLED)
    assert fired(targets) == set()


def test_triggers_off_when_job_triggers_enabled_is_false(targets) -> None:
    job = reader("quiet", [{"JobKey": "after-success", "TriggerType": "OnSuccess"}], enabled=False)
    run(job, ExecutionStatus.SUCCEEDED, rows=1)
    assert fired(targets) == set()


def test_a_cycle_stops_after_one_round() -> None:
    # given A triggers B and B triggers A
    a = reader("A", [{"JobKey": "B", "TriggerType": "OnSuccess"}])
    reader("B", [{"JobKey": "A", "TriggerType": "OnSuccess"}])
    b = Job.objects.get(job_key="B")
    # when A succeeds, then the B it started succeeds too
    run(a, ExecutionStatus.SUCCEEDED)
    (b_run,) = started(b)
    Execution.objects.filter(pk=b_run.pk).update(status=ExecutionStatus.RUNNING)
    finish(b_run, ExecutionStatus.SUCCEEDED)
    # then A is not started again, and B's log says why
    assert len(started(a)) == 1
    assert any("already in this trigger chain" in line for line in log_of(b_run))


def test_a_job_cannot_trigger_itself() -> None:
    job = reader("self", [{"JobKey": "self", "TriggerType": "OnCompletion"}])
    run(job, ExecutionStatus.SUCCEEDED)
    assert len(started(job)) == 1


@override_settings(GATEWAY_TRIGGER_MAX_DEPTH=3)
def test_a_long_chain_stops_at_the_depth_limit() -> None:
    jobs = [reader(f"J{i}", [{"JobKey": f"J{i + 1}"}]) for i in range(5)]
    run(jobs[0], ExecutionStatus.SUCCEEDED)
    for job in jobs[1:]:
        for execution in started(job):
            if not execution.is_finished:
                Execution.objects.filter(pk=execution.pk).update(status=ExecutionStatus.RUNNING)
                finish(execution, ExecutionStatus.SUCCEEDED)
    assert [len(started(job)) for job in jobs] == [1, 1, 1, 0, 0]


def test_a_target_already_running_or_disabled_is_not_started_and_logged() -> None:
    busy = reader("busy", status=JobStatus.RUNNING)
    off = reader("off", active=False)
    job = reader("src", [{"JobKey": "busy"}, {"JobKey": "off"}, {"JobKey": "ghost"}])
    execution = run(job, ExecutionStatus.SUCCEEDED)
    assert started(busy) == [] and started(off) == []
    assert log_of(execution) == [
        "Trigger OnSuccess: 'busy' is already running.",
        "Trigger OnSuccess: 'off' is disabled.",
        "Trigger OnSuccess: job 'ghost' not found.",
    ]


def test_no_trigger_fires_while_the_agent_is_stopped(source, targets) -> None:
    set_running(False)
    execution = run(source, ExecutionStatus.SUCCEEDED, rows=1)
    assert fired(targets) == set()
    assert "The agent is stopped" in log_of(execution)[0]


def test_a_direct_job_fires_once_when_its_run_ends(targets) -> None:
    # given a direct job whose reader has the triggers
    writer = Job.objects.create(kind=JobKind.WRITER, job_key="__direct")
    direct = reader(
        "direct",
        [
            {"JobKey": "after-data", "TriggerType": "OnSuccessWithData"},
            {"JobKey": "after-completion", "TriggerType": "OnCompletion"},
        ],
        direct_writer=writer,
    )
    writer.source = direct
    writer.save()
    Job.objects.filter(pk=direct.pk).update(status=JobStatus.RUNNING)
    reader_run = new_execution(direct)
    Execution.objects.filter(pk=reader_run.pk).update(status=ExecutionStatus.RUNNING)
    # when the sync engine runs the writer inside the reader's run (same guid), as it does
    writer_run = new_execution(writer, guid=reader_run.guid)
    Execution.objects.filter(pk=writer_run.pk).update(
        status=ExecutionStatus.RUNNING, record_count=4
    )
    writer_run.refresh_from_db()
    finish(writer_run, ExecutionStatus.SUCCEEDED)
    # then nothing fires while the reader's run is still going
    assert fired(targets) == set()
    # and once it ends, its triggers fire once, "with data" counting the writer's rows
    reader_run.refresh_from_db()
    finish(reader_run, ExecutionStatus.SUCCEEDED)
    assert fired(targets) == {"data", "completion"}
    assert len(started(targets["completion"])) == 1


def test_a_direct_job_whose_reader_fails_fires_on_failure_at_once() -> None:
    writer = Job.objects.create(kind=JobKind.WRITER, job_key="__d2")
    direct = reader("d2", [{"JobKey": "after", "TriggerType": "OnFailure"}], direct_writer=writer)
    after = reader("after")
    run(direct, ExecutionStatus.FAILED)
    assert len(started(after)) == 1


def test_accepted_shapes_and_the_shape_given_back() -> None:
    assert normalize_triggers(
        [
            {"JobKey": "a", "Guid": "g1", "TriggerType": "OnSuccessWithData"},
            {"jobKey": "b", "triggerType": 3},
            {"TargetJobKey": "c", "Type": "on-completion"},
            {"JobKey": "d", "TriggerType": "OnSuccess", "Disabled": True},
            "e",
        ]
    ) == [
        {"JobKey": "a", "Guid": "g1", "TriggerType": "OnSuccessWithData"},
        {"JobKey": "b", "Guid": "", "TriggerType": "OnFailure"},
        {"JobKey": "c", "Guid": "", "TriggerType": "OnCompletion"},
        {"JobKey": "e", "Guid": "", "TriggerType": "OnSuccess"},
    ]
    assert parse_triggers('[{"JobKey": "x", "TriggerType": 0}]')[0].kind == "OnCompletion"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"JobTriggers": [{"TriggerType": "OnSuccess"}]}, "names no job"),
        ({"JobTriggers": [{"JobKey": "x", "TriggerType": "Sometimes"}]}, "unknown TriggerType"),
        ({"JobTriggers": 5}, "must be a list"),
    ],
)
def test_validate_refuses_triggers_it_cannot_act_on(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_triggers(value)


def test_validate_accepts_the_vendor_default() -> None:
    validate_triggers({"JobTriggers": [], "JobTriggersEnabled": False})
    validate_triggers(None)

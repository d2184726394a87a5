"""The prepared row helpers (jobs.flows.runtime.rows) store and load what the ORM would."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from jobs.flows.runtime.rows import RowGetter, RowInserter
from jobs.models import Execution, ExecutionStatus, Job, JobKind, LogEntry, LogLevel

pytestmark = pytest.mark.django_db

EXECUTIONS = RowInserter(Execution)


def stored(execution: Execution) -> dict:
    return model_to_dict(Execution.objects.get(guid=execution.guid), exclude=["id"])


def test_inserted_rows_read_back_as_the_orms_own() -> None:
    # given two executions with every kind of value: enum choices, JSON, dates, NULLs, a
    # float given as an int, a decimal count
    job = Job.objects.create(kind=JobKind.FLOW, job_key="rows.ddf", content="<flow/>")
    when = timezone.now()
    values = dict(
        job_id=job.pk,
        job_guid=job.guid,
        job_key=job.job_key,
        listener_type=JobKind.FLOW,
        status=ExecutionStatus.SUCCEEDED,
        success=True,
        options={"inputs": {"a": [1, 2.5, None, "é"]}, "max_seconds": None},
        result=None,
        record_count=decimal.Decimal(7),
        elapsed_sql_time=3,
        created_on=when,
        started_at=when - dt.timedelta(seconds=1),
        finished_at=None,
    )
    by_orm = Execution.objects.create(**values)
    by_inserter = Execution(**values)
    # when one goes through the inserter
    EXECUTIONS.insert([by_inserter])
    # then both rows read back alike
    assert stored(by_inserter) == {**stored(by_orm), "guid": by_inserter.guid}


def test_inserter_and_getter_round_trip() -> None:
    execution = Execution(
        job_guid="g", job_key="k", listener_type=JobKind.FLOW, result={"error": "x"}
    )
    EXECUTIONS.insert([execution])
    loaded = RowGetter(Execution, where=("guid",), fields=("id", "status", "result")).get(
        execution.guid
    )
    assert loaded is not None
    assert (loaded.status, loaded.result) == ("pending", {"error": "x"})


def test_many_rows_without_ids() -> None:
    execution = Execution.objects.create(job_guid="g", job_key="k", listener_type="flow")
    lines = [
        LogEntry(execution=execution, job_guid="g", sequence=n, level=LogLevel.INFO, message=m)
        for n, m in enumerate(["one", "two"], 1)
    ]
    RowInserter(LogEntry).insert(lines)
    assert list(execution.log_entries.values_list("sequence", "message")) == [
        (1, "one"),
        (2, "two"),
    ]


def test_getter_fields_in_any_order() -> None:
    # Model.from_db matches values to fields by position: the getter keeps the model's order.
    job = Job.objects.create(kind=JobKind.FLOW, job_key="order.ddf", content="<flow/>")
    loaded = RowGetter(Job, where=("job_key",), fields=("updated_at", "job_key", "id")).get(
        "order.ddf"
    )
    assert loaded is not None
    assert (loaded.pk, loaded.job_key, loaded.updated_at) == (job.pk, "order.ddf", job.updated_at)
    assert loaded.content == "<flow/>"  # deferred, loaded when read

"""/jobs/summary and /jobs/info answer in a fixed number of queries, whatever the number of jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import ConnectionString, Execution, Job

JOBS = 2000
DIRECT_EVERY = 3  # one reader in three is a direct job with its own writer


def seed(count: int) -> None:
    """`count` stored jobs (readers, some direct with their writers), two runs each."""
    readers = count * DIRECT_EVERY // (DIRECT_EVERY + 1)
    ConnectionString.objects.create(key="db", system="PostgreSQL", connection_type="DB")
    Job.objects.bulk_create(
        Job(
            kind="reader",
            job_key=f"reader-{n:05d}",
            connection_key="db",
            definition={
                "JobKey": f"reader-{n:05d}",
                "ConnectionString": "db",
                "SqlRead": "SELECT 1",
            },
        )
        for n in range(readers)
    )
    direct = list(Job.objects.filter(kind="reader").order_by("id")[: count - readers])
    Job.objects.bulk_create(
        Job(
            kind="writer",
            job_key=f"__{r.job_key}",
            source=r,
            definition={"JobKey": f"__{r.job_key}", "TargetSystem": "DB"},
        )
        for r in direct
    )
    writers = {w.source_id: w for w in Job.objects.filter(kind="writer")}
    for reader in direct:
        reader.direct_writer = writers[reader.pk]
    Job.objects.bulk_update(direct, ["direct_writer"])
    now = timezone.now()
    Execution.objects.bulk_create(
        Execution(
            job=job,
            job_guid=job.guid,
            job_key=job.job_key,
            listener_type=job.kind,
            status="succeeded",
            success=age == 0,
            error_message="older run failed" if age else "",
            created_on=now - timedelta(minutes=age),
        )
        for job in Job.objects.all()
        for age in (5, 0)
    )
    assert Job.objects.count() == count


@pytest.mark.slow
def test_summary_of_2000_jobs_in_a_fixed_number_of_queries(
    datazen, django_assert_max_num_queries
) -> None:
    # given
    seed(JOBS)
    # when: auth (key, last-used) + jobs with writers + newest runs + connections
    with django_assert_max_num_queries(6):
        response = datazen.get("/jobs/summary")
    # then
    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == JOBS * DIRECT_EVERY // (DIRECT_EVERY + 1)  # direct jobs listed once
    assert all(row["Success"] is True for row in rows)  # the newest run, not the older one
    direct = [row for row in rows if row["IsDirectMode"]]
    assert len(direct) == JOBS // (DIRECT_EVERY + 1)
    assert all(row["DirectSuccess"] is True and row["TargetGuid"] for row in direct)


@pytest.mark.slow
def test_jobs_info_of_2000_jobs_in_a_fixed_number_of_queries(
    datazen, django_assert_max_num_queries
) -> None:
    seed(JOBS)
    with django_assert_max_num_queries(5):
        response = datazen.get("/jobs/info")
    assert response.status_code == 200
    assert all(p["LastStatus"]["Success"] is True for p in response.json())


def test_query_count_does_not_grow_with_jobs(datazen, django_assert_num_queries) -> None:
    # given: the same request over 8 jobs and over 40 takes the same number of queries
    seed(8)
    datazen.get("/jobs/summary")  # warms the agent's last-used stamp
    with django_assert_num_queries(4) as small:
        datazen.get("/jobs/summary")
    Execution.objects.all().delete()
    Job.objects.all().delete()
    ConnectionString.objects.all().delete()
    seed(40)
    # then
    with django_assert_num_queries(len(small.captured_queries)):
        datazen.get("/jobs/summary")

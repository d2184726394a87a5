"""The console's job and run pages: what an operator sees, and that it agrees with the API."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs import charts, progress
from jobs.models import ConnectionString, Execution, Job, LogEntry
from jobs.systems.db.reader import estimate_rows
from jobs.systems.db.url import create_db_engine
from tests.syncdb import direct_job, execute, run

pytestmark = pytest.mark.django_db


def add_job(admin_client: Any, **fields: Any) -> Any:
    """Post the console's "Add job" form as a person would fill it."""
    form = {
        "job_type": "reader",
        "key": "films",
        "schedule": "",
        "enabled": "on",
        "definition_text": json.dumps(
            {"ConnectionString": "sqlite:///films.db", "SqlRead": "SELECT * FROM films"}
        ),
        "writer_text": "",
    }
    form.update(fields)
    return admin_client.post("/admin/jobs/job/add/", form)


def form_errors(response: Any) -> str:
    form = response.context["adminform"].form
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def run_of(job: Job, status: str = "succeeded", **fields: Any) -> Execution:
    started = fields.pop("started_at", timezone.now() - timedelta(seconds=30))
    return Execution.objects.create(
        job=job,
        job_guid=job.guid,
        job_key=job.job_key,
        listener_type=fields.pop("listener_type", job.kind),
        status=status,
        started_at=started,
        finished_at=None if status == "running" else started + timedelta(seconds=12.5),
        **fields,
    )


# --- the same validation and services as the API ---------------------------------------------


BAD_PIPELINE = {"ConnectionString": "x", "PipelineDef": [{"Name": "DataTeleport"}]}
BAD_TRIGGERS = {"ConnectionString": "x", "JsonData": {"JobTriggers": [{"TriggerType": "?"}]}}


@pytest.mark.parametrize(
    ("schedule", "definition"),
    [
        ("0 0 25 * * ?", {"ConnectionString": "x"}),
        ("every day", {"ConnectionString": "x"}),
        ("", BAD_PIPELINE),
        ("", BAD_TRIGGERS),
        ("", {"SqlRead": "SELECT 1"}),
    ],
)
def test_console_refuses_what_the_api_refuses_with_the_same_message(
    admin_client, datazen, schedule, definition
) -> None:
    # given the API's answer to this reader
    reader = {"JobKey": "films", "CronSchedule": schedule, **definition}
    answer = datazen.post("/job", {"JobReader": reader}, format="json")
    assert answer.status_code == 400
    # when the same reader is typed into the console
    page = add_job(admin_client, schedule=schedule, definition_text=json.dumps(definition))
    # then the console refuses it with the API's message, and nothing was created
    assert page.status_code == 200
    assert answer.json()["Error"] in form_errors(page)
    assert Job.objects.count() == 0


def test_malformed_definition_says_where(admin_client) -> None:
    page = add_job(admin_client, definition_text="{\n  'SqlRead': 1\n}")
    assert "line 2, column 3" in form_errors(page)
    assert Job.objects.count() == 0


def test_cron_schedule_error_is_the_apis_message_on_the_schedule_field(
    admin_client, datazen
) -> None:
    # given a schedule the API refuses
    body = {
        "JobReader": {
            "JobKey": "films",
            "ConnectionString": "sqlite:///films.db",
            "CronSchedule": "0 0 25 * * ?",
        }
    }
    api_error = datazen.post("/job", body, format="json").json()["Error"]
    # when the console gets it
    page = add_job(admin_client, schedule="0 0 25 * * ?")
    # then the schedule field carries the API's own message
    assert page.context["adminform"].form.errors["schedule"] == [api_error]


def test_job_created_in_the_console_is_what_post_job_creates(admin_client) -> None:
    # when a direct job is added in the console
    response = add_job(
        admin_client,
        schedule="0 0/5 * * * ?",
        writer_text=json.dumps(
            {
                "ConnectionString": "sqlite:///copy.db",
                "TargetObject": "films",
                "UpsertColumns": "id",
            }
        ),
    )
    # then the reader and its direct writer exist, linked as the API links them
    assert response.status_code == 302
    reader = Job.objects.get(job_key="films")
    writer = Job.objects.get(job_key="__films")
    assert reader.direct_writer == writer and writer.source == reader
    assert reader.cron_schedule == "0 0/5 * * * ?"
    assert reader.definition["JsonData"]["DirectWriter"] == "__films"


def test_duplicate_job_key_is_refused_like_the_api(admin_client) -> None:
    add_job(admin_client)
    page = add_job(admin_client)
    assert "JobKey 'films' is already used" in form_errors(page)
    assert Job.objects.count() == 1


def test_editing_keeps_the_guid_and_the_fields_the_form_does_not_show(admin_client) -> None:
    # given
    add_job(admin_client)
    job = Job.objects.get(job_key="films")
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/")
    form = page.context["adminform"].form
    definition = json.loads(form.initial["definition_text"])
    assert "Guid" not in definition and definition["SqlRead"] == "SELECT * FROM films"
    # when the schedule is changed and a bad one tried first
    base = {
        "key": "films",
        "enabled": "on",
        "definition_text": form.initial["definition_text"],
        "executions-TOTAL_FORMS": "0",
        "executions-INITIAL_FORMS": "0",
    }
    refused = admin_client.post(
        f"/admin/jobs/job/{job.pk}/change/", {**base, "schedule": "61 * * * * ?"}
    )
    saved = admin_client.post(
        f"/admin/jobs/job/{job.pk}/change/", {**base, "schedule": "0 15 10 ? * MON-FRI"}
    )
    # then
    assert refused.status_code == 200 and "schedule" in refused.context["adminform"].form.errors
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    job.refresh_from_db()
    assert job.cron_schedule == "0 15 10 ? * MON-FRI"
    assert job.definition["Guid"] == job.guid
    assert job.definition["SqlRead"] == "SELECT * FROM films"


def test_start_now_on_a_direct_writer_starts_its_reader_as_job_start_does(
    admin_client, tmp_path
) -> None:
    # given a direct job
    add_job(
        admin_client,
        writer_text=json.dumps({"ConnectionString": "sqlite:///copy.db", "TargetObject": "t"}),
    )
    reader, writer = Job.objects.get(job_key="films"), Job.objects.get(job_key="__films")
    # when its writer's page says "Start now"
    response = admin_client.post(f"/admin/jobs/job/{writer.pk}/start/", follow=True)
    # then the reader runs (the writer follows it), and the person lands on the run's page
    execution = Execution.objects.get()
    assert execution.job == reader and execution.listener_type == "reader"
    assert execution.requested_by == "console:admin"
    assert response.redirect_chain[-1][0] == f"/admin/jobs/execution/{execution.pk}/change/"
    assert "__films: started (through its reader films)." in [
        str(m) for m in response.context["messages"]
    ]


def test_start_now_action_on_a_disabled_job_says_so(admin_client) -> None:
    add_job(admin_client, enabled="")
    job = Job.objects.get()
    response = admin_client.post(
        "/admin/jobs/job/", {"action": "start_now", "_selected_action": [job.pk]}, follow=True
    )
    assert any("is disabled" in str(m) for m in response.context["messages"])
    assert not Execution.objects.exists()


def test_stop_asks_the_running_run_to_stop(admin_client) -> None:
    add_job(admin_client)
    job = Job.objects.get()
    running = run_of(job, "running")
    response = admin_client.post(f"/admin/jobs/job/{job.pk}/stop/", follow=True)
    running.refresh_from_db()
    assert running.cancel_requested
    assert "films: 1 run(s) asked to stop." in [str(m) for m in response.context["messages"]]


def test_start_and_stop_refuse_get(admin_client) -> None:
    add_job(admin_client)
    job = Job.objects.get()
    assert admin_client.get(f"/admin/jobs/job/{job.pk}/start/").status_code == 405
    assert not Execution.objects.exists()


def test_dynamic_jobs_and_flows_are_shown_not_edited(admin_client) -> None:
    dynamic = Job.objects.create(kind="reader", job_key="dyn", is_dynamic=True)
    page = admin_client.get(f"/admin/jobs/job/{dynamic.pk}/change/")
    assert page.status_code == 200
    assert "definition_text" not in page.content.decode()
    refused = admin_client.post(f"/admin/jobs/job/{dynamic.pk}/change/", {"key": "other"})
    assert refused.status_code == 403
    dynamic.refresh_from_db()
    assert dynamic.job_key == "dyn"


def test_deleting_a_direct_job_in_the_console_deletes_its_writer_as_the_api_does(
    admin_client,
) -> None:
    add_job(
        admin_client,
        writer_text=json.dumps({"ConnectionString": "sqlite:///copy.db", "TargetObject": "t"}),
    )
    reader = Job.objects.get(job_key="films")
    admin_client.post(f"/admin/jobs/job/{reader.pk}/delete/", {"post": "yes"})
    assert not Job.objects.exists()


# --- the job page: recent runs and their history ----------------------------------------------


def test_job_page_lists_recent_runs_with_figures_and_links(admin_client) -> None:
    # given a job with a good run and a failed one
    add_job(admin_client)
    job = Job.objects.get()
    good = run_of(job, records_available=1200, records_direct_written=1150, delete_count=0)
    bad = run_of(job, "failed", error_message='no such table: "films"')
    # when
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    # then
    assert "Recent runs" in page
    assert f'href="/admin/jobs/execution/{good.pk}/change/"' in page
    assert f'href="/admin/jobs/execution/{bad.pk}/change/"' in page
    assert "1,200" in page and "1,150" in page
    assert "12.5 s" in page
    assert "no such table: &quot;films&quot;" in page
    assert 'class="run-history"' in page
    assert page.count("<circle") >= 4  # each run in each panel, besides the legend


def test_job_page_lists_only_the_newest_runs(admin_client) -> None:
    add_job(admin_client)
    job = Job.objects.get()
    for n in range(25):
        run_of(job, started_at=timezone.now() - timedelta(minutes=60 - n))
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/")
    runs = page.context["inline_admin_formsets"][0].formset.queryset
    assert runs.count() == 20
    assert (
        admin_client.get(f"/admin/jobs/execution/?job__id__exact={job.pk}")
        .context["cl"]
        .result_count
        == 25
    )


def test_history_chart_draws_each_run_and_marks_failures() -> None:
    job = Job.objects.create(kind="reader", job_key="films")
    now = timezone.now()
    runs = [
        run_of(job, started_at=now - timedelta(hours=3), records_available=100, record_count=10),
        run_of(job, "failed", started_at=now - timedelta(hours=2), records_available=50),
        run_of(job, started_at=now - timedelta(hours=1), records_available=400, record_count=40),
    ]
    svg = str(charts.history_svg([progress.figures(run) for run in runs]))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('fill="#ba2121"><title>') == 3  # the failed run, in each of 3 series
    assert "rows read: 400" in svg and "duration: 12.5 s" in svg
    # newest to the right: x grows with time
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)" cy="[\d.]+" r="3.5"', svg)[:3]]
    assert xs == sorted(xs)


def test_history_chart_of_a_job_that_never_ran() -> None:
    assert "No run has started yet." in charts.history_svg([])


# --- the run page: progress while it runs, then its log -----------------------------------------


def test_run_page_shows_each_log_line_once_to_the_millisecond_with_its_level(
    admin_client,
) -> None:
    # given a finished run with an info and an error line
    job = Job.objects.create(kind="reader", job_key="films")
    run = run_of(job, "failed", error_message="boom")
    at = timezone.now().replace(microsecond=123456)
    long_message = "relation does not exist " + "x" * 300 + " END"
    LogEntry.objects.create(
        execution=run,
        job_guid=job.guid,
        sequence=1,
        level=1,
        message="Reader starting",
        created_at=at,
    )
    LogEntry.objects.create(
        execution=run, job_guid=job.guid, sequence=2, level=3, message=long_message, created_at=at
    )
    # when
    page = admin_client.get(f"/admin/jobs/execution/{run.pk}/change/").content.decode()
    # then
    assert page.count("Reader starting") == 1
    assert page.count(long_message) == 1  # whole, not cut at 80 characters
    assert f"{timezone.localtime(at):%H:%M:%S}.123" in page
    assert 'class="log-line log-error"' in page and 'class="log-line log-info"' in page
    assert "data-live-url" not in page  # finished: nothing to refresh


def test_running_run_page_refreshes_its_progress_until_the_run_ends(admin_client) -> None:
    # given a reader whose last run read 1,000 rows, now running at 250 rows
    job = Job.objects.create(kind="reader", job_key="films")
    run_of(job, started_at=timezone.now() - timedelta(hours=1), records_available=1000)
    running = run_of(job, "running", records_available=250)
    # when
    page = admin_client.get(f"/admin/jobs/execution/{running.pk}/change/").content.decode()
    live_url = f"/admin/jobs/execution/{running.pk}/live/"
    first = admin_client.get(live_url).content.decode()
    Execution.objects.filter(pk=running.pk).update(records_available=600)
    second = admin_client.get(live_url).content.decode()
    Execution.objects.filter(pk=running.pk).update(
        status="succeeded", records_available=1010, finished_at=timezone.now()
    )
    done = admin_client.get(live_url).content.decode()
    # then
    assert f'data-live-url="{live_url}"' in page
    assert "/static/jobs/console.js" in page
    assert '<span data-figure="rows">250</span> rows read' in first
    assert "25.0 %" in first and "1,000" in first and "rows the last successful run read" in first
    assert '<span data-figure="rows">600</span>' in second and "60.0 %" in second
    assert "data-live-url" not in done and "100.0 %" in done and "Succeeded" in done


def test_progress_of_a_direct_writer_is_measured_against_its_readers_changes() -> None:
    job = Job.objects.create(kind="reader", job_key="films")
    writer = Job.objects.create(kind="writer", job_key="__films", source=job)
    reader_run = run_of(job, record_count=800, delete_count=200)
    writer_run = run_of(writer, "running", guid=reader_run.guid, record_count=400, delete_count=100)
    figures = progress.progress(writer_run)
    assert (figures.rows, figures.estimate, figures.percent) == (500, 1000, 50.0)
    assert figures.rows_label == "changes applied"


def test_the_sources_own_estimate_comes_before_the_last_runs_figure() -> None:
    job = Job.objects.create(kind="reader", job_key="films")
    run_of(job, started_at=timezone.now() - timedelta(hours=1), records_available=1000)
    running = run_of(job, "running", records_available=300, rows_estimate=1200)
    figures = progress.progress(running)
    assert (figures.estimate, figures.percent) == (1200, 25.0)
    assert figures.estimate_basis == "the source's own estimate"


@pytest.mark.postgres
def test_a_postgresql_readers_run_records_the_planners_estimate(
    postgres_url: str, tmp_path
) -> None:
    # given: 5,000 rows, analyzed so the planner knows them
    execute(postgres_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(
        postgres_url,
        "INSERT INTO films SELECT g, 'Film ' || g FROM generate_series(1, 5000) g",
        "ANALYZE films",
    )
    # when: a direct job reads them (a LIKE with % too: the estimate's SQL keeps it as is)
    job = direct_job(
        postgres_url,
        f"sqlite:///{tmp_path / 'target.sqlite3'}",
        sql="SELECT * FROM films WHERE title LIKE 'Film %'",
        target="films",
    )
    execution = run(job)
    # then: the run knew what to expect before it read, and read it
    assert execution.status == "succeeded", execution.error_message
    assert execution.records_available == 5000
    assert execution.rows_estimate is not None and 4000 <= execution.rows_estimate <= 6000


@pytest.mark.postgres
def test_the_estimate_never_runs_a_second_statement(postgres_url: str) -> None:
    execute(postgres_url, "CREATE TABLE films (id INTEGER PRIMARY KEY)")
    engine = create_db_engine("", postgres_url)
    assert estimate_rows(engine, "SELECT * FROM films; DROP TABLE films") is None
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM films").scalar() == 0


@pytest.mark.mariadb
def test_a_mariadb_readers_run_records_the_planners_estimate(mariadb_url: str, tmp_path) -> None:
    execute(mariadb_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(
        mariadb_url,
        "INSERT INTO films VALUES (:id, :title)",
        params=[{"id": i, "title": f"Film {i}"} for i in range(1, 2001)],
    )
    execute(mariadb_url, "ANALYZE TABLE films")
    job = direct_job(
        mariadb_url,
        f"sqlite:///{tmp_path / 'target.sqlite3'}",
        sql="SELECT * FROM films",
        target="films",
    )
    execution = run(job)
    assert execution.status == "succeeded", execution.error_message
    assert execution.rows_estimate is not None and 1000 <= execution.rows_estimate <= 3000


def test_a_sqlite_source_has_no_estimate_of_its_own(tmp_path) -> None:
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    execute(source, "CREATE TABLE films (id INTEGER PRIMARY KEY)", "INSERT INTO films VALUES (1)")
    job = direct_job(
        source, f"sqlite:///{tmp_path / 'target.sqlite3'}", sql="SELECT * FROM films", target="t"
    )
    execution = run(job)
    assert execution.status == "succeeded" and execution.rows_estimate is None


def test_progress_without_an_estimate_shows_no_percentage() -> None:
    job = Job.objects.create(kind="reader", job_key="films")
    figures = progress.progress(run_of(job, "running", records_available=10))
    assert figures.estimate is None and figures.percent is None
    assert figures.seconds is not None and figures.seconds >= 29


def test_live_part_needs_a_logged_in_operator(client) -> None:
    job = Job.objects.create(kind="reader", job_key="films")
    run = run_of(job, "running")
    response = client.get(f"/admin/jobs/execution/{run.pk}/live/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_console_script_and_style_are_served_by_the_gateway(client) -> None:
    for asset in ("/static/jobs/console.js", "/static/jobs/console.css"):
        response = client.get(asset)
        assert response.status_code == 200, asset
        body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        assert b"http://" not in body and b"https://" not in body  # nothing from a CDN


# --- the rest of the console -------------------------------------------------------------------


def test_no_view_site_link_to_a_page_that_does_not_exist(admin_client) -> None:
    page = admin_client.get("/admin/").content.decode()
    assert "View site" not in page
    assert "Jobs, runs and connections" in page


def test_connection_string_is_tested_on_save_with_the_drivers_words(admin_client, tmp_path) -> None:
    # given a SQLite file that is a folder, so the driver refuses it
    (tmp_path / "not-a-db").mkdir()
    fields = {"system": "SQLite", "connection_type": "DB", "display_name": "", "display_value": ""}
    # when
    good = admin_client.post(
        "/admin/jobs/connectionstring/add/",
        {"key": "good", "value": f"sqlite:///{tmp_path / 'good.db'}", **fields},
        follow=True,
    )
    bad = admin_client.post(
        "/admin/jobs/connectionstring/add/",
        {"key": "bad", "value": f"sqlite:///{tmp_path / 'not-a-db'}", **fields},
        follow=True,
    )
    # then both are saved, each with what the connection attempt said
    assert "good: connection OK (sqlite answers)" in [str(m) for m in good.context["messages"]]
    bad_messages = [str(m) for m in bad.context["messages"]]
    assert any(m.startswith("bad: connection failed:") for m in bad_messages), bad_messages
    assert any("unable to open database file" in m for m in bad_messages), bad_messages
    assert ConnectionString.objects.count() == 2


def test_test_button_on_the_change_page_connects_now(admin_client, tmp_path) -> None:
    # given a stored connection to a database with a table
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    execute(url, "CREATE TABLE t (id INTEGER)")
    conn = ConnectionString(key="crm", system="SQLite", connection_type="DB")
    conn.value = url
    conn.save()
    change_page = admin_client.get(f"/admin/jobs/connectionstring/{conn.pk}/change/")
    assert f'action="/admin/jobs/connectionstring/{conn.pk}/test/"' in change_page.content.decode()
    # when
    response = admin_client.post(f"/admin/jobs/connectionstring/{conn.pk}/test/", follow=True)
    # then
    assert response.redirect_chain[-1][0] == f"/admin/jobs/connectionstring/{conn.pk}/change/"
    assert "crm: connection OK (sqlite answers)" in [str(m) for m in response.context["messages"]]


def test_job_with_runs_is_saved_with_its_runs_list_as_the_browser_posts_it(admin_client) -> None:
    # given a job whose page lists two runs
    add_job(admin_client)
    job = Job.objects.get()
    runs = [run_of(job), run_of(job, "failed")]
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/")
    html = page.content.decode()
    # every input of the page's form, as the browser would send them back
    posted = dict(
        re.findall(r'<input type="hidden" name="(executions-[^"]+)" value="([^"]*)"', html)
    )
    posted.update(re.findall(r'name="(executions-[^"]+)"[^>]*value="([^"]*)"', html))
    form = page.context["adminform"].form
    # when
    response = admin_client.post(
        f"/admin/jobs/job/{job.pk}/change/",
        {
            **posted,
            "key": "films",
            "schedule": "0 0 6 * * ?",
            "enabled": "on",
            "definition_text": form.initial["definition_text"],
        },
    )
    # then
    assert posted["executions-TOTAL_FORMS"] == "2"
    assert response.status_code == 302, response.context["adminform"].form.errors
    job.refresh_from_db()
    assert job.cron_schedule == "0 0 6 * * ?"
    assert Execution.objects.filter(pk__in=[r.pk for r in runs]).count() == 2


def test_job_list_shows_each_jobs_last_run_in_one_query(
    admin_client, django_assert_max_num_queries
) -> None:
    # given three jobs, two of which ran
    for key in ("a", "b", "c"):
        add_job(admin_client, key=key)
    a, b, _ = Job.objects.order_by("job_key")
    run_of(a, started_at=timezone.now() - timedelta(hours=2))
    last_a = run_of(a, "failed")
    last_b = run_of(b)
    # when
    with django_assert_max_num_queries(8):  # session, user, count, the list: not one per job
        page = admin_client.get("/admin/jobs/job/").content.decode()
    # then
    assert f'href="/admin/jobs/execution/{last_a.pk}/change/"' in page
    assert f'href="/admin/jobs/execution/{last_b.pk}/change/"' in page
    assert 'status-failed">Failed</span>' in page


def test_run_page_costs_the_same_queries_whatever_the_length_of_its_log(
    admin_client, django_assert_max_num_queries
) -> None:
    job = Job.objects.create(kind="reader", job_key="films")
    run = run_of(job, "running")
    LogEntry.objects.bulk_create(
        LogEntry(execution=run, job_guid=job.guid, sequence=n, message=f"line {n}")
        for n in range(1, 2501)
    )
    with django_assert_max_num_queries(8):
        live = admin_client.get(f"/admin/jobs/execution/{run.pk}/live/").content.decode()
    # while it runs, the log's tail; once finished, the last 2,000 lines
    assert "line 2500<" in live and "line 2301<" in live and "line 2300<" not in live
    assert "2,300 earlier lines are in" in live
    Execution.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())
    done = admin_client.get(f"/admin/jobs/execution/{run.pk}/live/").content.decode()
    assert "line 501<" in done and "line 500<" not in done
    assert "500 earlier lines are in" in done

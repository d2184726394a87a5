"""The admin console: what operators change is what the APIs see."""

import pytest
from django.db import connection

from jobs.models import AccessKey, ConnectionString, Execution, Job, LogEntry

pytestmark = pytest.mark.django_db


def test_connection_created_in_the_admin_is_stored_encrypted(admin_client):
    # when
    response = admin_client.post(
        "/admin/jobs/connectionstring/add/",
        {
            "key": "warehouse",
            "system": "SQLite",
            "connection_type": "DB",
            "display_name": "Warehouse",
            "display_value": "",
            "value": "sqlite:////srv/secret-warehouse.db",
        },
    )
    # then
    assert response.status_code == 302
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_value FROM jobs_connectionstring")
        (stored,) = cursor.fetchone()
    assert "secret-warehouse" not in stored
    assert (
        ConnectionString.objects.get(key="warehouse").value == "sqlite:////srv/secret-warehouse.db"
    )


def test_connection_list_and_form_never_show_the_secret(admin_client):
    conn = ConnectionString(key="crm", system="HTTP", connection_type="HTTP")
    conn.value = "https://user:hunter2@crm.example"
    conn.save()
    listing = admin_client.get("/admin/jobs/connectionstring/").content.decode()
    form = admin_client.get(f"/admin/jobs/connectionstring/{conn.pk}/change/").content.decode()
    assert "crm" in listing
    assert "hunter2" not in listing and "hunter2" not in form
    assert conn.encrypted_value not in listing


def test_editing_without_a_new_value_keeps_the_secret(admin_client):
    conn = ConnectionString(key="crm", system="HTTP", connection_type="HTTP")
    conn.value = "https://crm.example"
    conn.save()
    admin_client.post(
        f"/admin/jobs/connectionstring/{conn.pk}/change/",
        {
            "key": "crm",
            "system": "HTTP",
            "connection_type": "HTTP",
            "display_name": "CRM",
            "display_value": "",
            "value": "",
        },
    )
    conn.refresh_from_db()
    assert conn.display_name == "CRM" and conn.value == "https://crm.example"


def test_test_connection_action_really_connects(admin_client, tmp_path, settings):
    # given one database that exists and one path that does not (under the drive root)
    settings.GATEWAY_DRIVE_ROOT = str(tmp_path)
    good = ConnectionString(key="good", system="SQLite", connection_type="DB")
    good.value = f"sqlite:///{tmp_path / 'good.db'}"
    good.save()
    bad = ConnectionString(key="bad", system="Local Path", connection_type="Drive")
    bad.value = str(tmp_path / "missing")
    bad.save()
    # when
    response = admin_client.post(
        "/admin/jobs/connectionstring/",
        {"action": "test_connection", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    # then
    messages = [str(m) for m in response.context["messages"]]
    assert "good: connection OK (sqlite answers)" in messages
    assert any(m.startswith("bad: connection failed") and "does not exist" in m for m in messages)


def test_access_key_is_shown_once_at_creation_then_only_its_hash_is_kept(admin_client):
    # when
    response = admin_client.post(
        "/admin/jobs/accesskey/add/",
        {"name": "reporting", "scope": "jobs", "read_only": "on", "is_active": "on"},
        follow=True,
    )
    # then
    messages = [str(m) for m in response.context["messages"]]
    raw = next(m for m in messages if "shown only this once" in m).split(": ")[1].split(" ")[0]
    key = AccessKey.objects.get(name="reporting")
    assert key.read_only and key.scope == "jobs"
    assert key.key_hash == AccessKey.hash_key(raw)
    assert raw not in admin_client.get(f"/admin/jobs/accesskey/{key.pk}/change/").content.decode()


def test_execution_page_shows_its_log_entries_and_filters_by_status(admin_client):
    job = Job.objects.create(kind="reader", job_key="films")
    done = Execution.objects.create(
        job=job, job_guid=job.guid, job_key="films", listener_type="reader", status="succeeded"
    )
    Execution.objects.create(
        job=job, job_guid=job.guid, job_key="films", listener_type="reader", status="failed"
    )
    LogEntry.objects.create(
        execution=done, job_guid=job.guid, sequence=1, message="Reader starting..."
    )
    page = admin_client.get(f"/admin/jobs/execution/{done.pk}/change/").content.decode()
    assert "Reader starting..." in page
    filtered = admin_client.get("/admin/jobs/execution/?status__exact=failed")
    assert filtered.context["cl"].result_count == 1


def test_admin_login_page_is_served(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content


def test_log_entries_can_be_searched_across_runs(admin_client):
    job = Job.objects.create(kind="reader", job_key="films")
    run = Execution.objects.create(
        job=job, job_guid=job.guid, job_key="films", listener_type="reader", status="failed"
    )
    LogEntry.objects.create(
        execution=run,
        job_guid=job.guid,
        sequence=1,
        level=3,
        message='relation "film" does not exist',
    )
    LogEntry.objects.create(execution=run, job_guid=job.guid, sequence=2, message="Reader done")
    response = admin_client.get("/admin/jobs/logentry/?q=does+not+exist&level__exact=3")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_engines_page_lists_loaded_flows_and_unloads_them(admin_client):
    # given a flow loaded into an engine of this (embedded) gateway
    from jobs.flows.runtime.engines import pool, reset_pool
    from tests.test_dataflux_support import example_xml

    reset_pool()
    flow = Job.objects.create(
        kind="flow", job_key="Determine_Gender.ddf", content=example_xml("Determine_Gender.ddf")
    )
    engine = pool().preload(flow)
    # when
    page = admin_client.get("/admin/jobs/flowengine/")
    unloaded = admin_client.post("/admin/jobs/flowengine/", {"unload": engine.id}, follow=True)
    # then
    assert "Determine_Gender.ddf" in page.content.decode()
    assert f"Engine {engine.id} unloaded." in [str(m) for m in unloaded.context["messages"]]
    assert "No engine is loaded." in unloaded.content.decode()

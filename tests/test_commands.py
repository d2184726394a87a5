"""Scripted set-up: createaccesskey, setconnection, rotateconnectionkeys, bootstrap."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from jobs.models import AccessKey, AccessScope, ConnectionString

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_createaccesskey_prints_the_key_last_and_stores_only_its_hash():
    # when
    raw = run("createaccesskey", "ops", "--scope", "agent", "--read-only").strip().splitlines()[-1]
    # then
    key = AccessKey.objects.get(name="ops")
    assert key.scope == AccessScope.AGENT and key.read_only and not key.can_decrypt
    assert key.key_hash == AccessKey.hash_key(raw) and raw not in key.key_hash
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM jobs_accesskey")
        assert not any(raw in str(value) for row in cursor.fetchall() for value in row)
    assert AccessKey.objects.authenticate(raw) == key


def test_setconnection_stores_the_value_encrypted_and_reads_it_back():
    # given
    secret = "postgresql+psycopg://app:s3cret-pass@db.example:5432/sales"
    # when
    run("setconnection", "sales", "--system", "PostgreSQL", "--type", "DB", "--value", secret)
    # then the column holds a Fernet token, never the plain text
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_value FROM jobs_connectionstring WHERE key = 'sales'")
        (stored,) = cursor.fetchone()
    assert "s3cret" not in stored and "db.example" not in stored
    assert ConnectionString.objects.get(key="sales").value == secret


def test_setconnection_replaces_an_existing_connection():
    run("setconnection", "files", "--system", "Local Path", "--type", "Drive", "--value", "/a")
    # when
    out = run(
        "setconnection", "files", "--system", "Local Path", "--type", "Drive", "--value", "/b"
    )
    # then
    assert "replaced" in out
    assert ConnectionString.objects.get(key="files").value == "/b"
    assert ConnectionString.objects.count() == 1


def test_rotation_reencrypts_under_the_new_key_and_the_old_key_can_go(settings):
    # given a connection encrypted under the current key
    old_key = settings.GATEWAY_FERNET_KEYS[0]
    run("setconnection", "crm", "--system", "HTTP", "--type", "HTTP", "--value", "https://crm")
    new_key = Fernet.generate_key().decode()
    # when the new key is put first and rotation runs
    with override_settings(GATEWAY_FERNET_KEYS=[new_key, old_key]):
        run("rotateconnectionkeys")
    # then the new key alone decrypts it
    with override_settings(GATEWAY_FERNET_KEYS=[new_key]):
        assert ConnectionString.objects.get(key="crm").value == "https://crm"


def test_bootstrap_creates_a_key_and_an_admin_once():
    # when
    first = run("bootstrap")
    second = run("bootstrap")
    # then
    assert "access key" in first and "Admin console user" in first
    assert second == ""
    assert AccessKey.objects.count() == 1
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_createsuperuser_noinput_makes_a_dataflux_user(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "flux-pass-123")
    call_command("createsuperuser", "--noinput", username="flux", email="f@x.io", stdout=StringIO())
    assert get_user_model().objects.get(username="flux").check_password("flux-pass-123")


def test_bootstrap_starts_a_new_boot_that_every_process_reads_from_the_database():
    # given a dynamic job of the current boot
    from jobs import agent
    from jobs.models import Job

    old_boot = agent.start_new_boot()
    Job.objects.create(kind="reader", job_key="dyn", is_dynamic=True, boot_id=old_boot)
    # when the deployment starts again
    run("bootstrap")
    # then the boot changed for everyone (it is read from the database) and the job is gone
    assert agent.boot_id() not in ("", old_boot)
    assert not Job.objects.filter(job_key="dyn").exists()

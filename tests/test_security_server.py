"""The embedded server (`make run`, waitress): HEAD answers carry no body, so a kept-alive
connection stays in step; deployment files are owner-only."""

from __future__ import annotations

import http.client
import stat
import sys
from pathlib import Path

import pytest

from tests.processes import free_port, gateway_env, manage, started, wait_for_http

pytestmark = pytest.mark.slow


def test_head_has_no_body_and_keeps_a_kept_alive_connection_in_step(tmp_path: Path) -> None:
    # given a served gateway
    env = gateway_env(tmp_path / "var")
    manage(env, "migrate", "--noinput")
    key = manage(env, "bootstrap").split("may decrypt): ")[1].split()[0]
    port = free_port()
    with started(
        [sys.executable, "manage.py", "run", "--port", str(port)], env, tmp_path / "run.log"
    ):
        wait_for_http(f"http://127.0.0.1:{port}/admin/login/")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": f"SharedKey {key}"}
        answers = []
        # when: HEAD then GET, several times, on one connection
        for path in ("/version", "/jobs/info", "/nowhere", "/SASDataMgmtRTDataJob/rest/"):
            for method in ("HEAD", "GET"):
                connection.request(method, path, headers=headers)
                response = connection.getresponse()
                answers.append((method, path, response.status, response.read()))
        connection.close()
        # and the bytes on the wire of one HEAD
        raw = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        raw.request("HEAD", "/version", headers=headers)
        sock = raw.sock
        assert sock is not None
        sock.settimeout(2)
        wire = b""
        try:
            while chunk := sock.recv(65536):
                wire += chunk
        except TimeoutError:
            pass
        raw.close()
    # then: every HEAD is empty and every GET after it parsed whole
    for method, path, status, body in answers:
        if method == "HEAD":
            assert body == b"", (path, status)
        else:
            assert status in (200, 401, 403, 404), (path, status, body[:200])
            assert body, path
    head, _, body = wire.partition(b"\r\n\r\n")
    assert b"Content-Length" in head
    assert body == b""


def test_the_data_directory_and_the_database_are_owner_only(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "var")
    manage(env, "migrate", "--noinput")
    data_dir = tmp_path / "var"
    for path in (data_dir, data_dir / "gateway.sqlite3", data_dir / "fernet.key"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path.name} is {oct(mode)}"


PRODUCTION = {
    "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_ALLOWED_HOSTS": "gateway.example.com",
}


def test_check_deploy_is_clean_in_the_production_configuration(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "var", **PRODUCTION)
    output = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in output


def test_check_deploy_names_what_is_missing_by_default(tmp_path: Path) -> None:
    env = gateway_env(tmp_path / "var")
    with pytest.raises(AssertionError, match=r"security\.W004"):
        manage(env, "check", "--deploy", "--fail-level", "WARNING")


def test_the_fleet_answers_no_host_name_by_default(tmp_path: Path) -> None:
    # given a fleet's environment without DJANGO_ALLOWED_HOSTS (no database is contacted)
    env = gateway_env(tmp_path / "var", DATABASE_URL="postgres://gw@127.0.0.1:1/gw")
    env.pop("DJANGO_ALLOWED_HOSTS", None)
    # when
    printed = manage(
        env, "shell", "-c", "from django.conf import settings as s; print(s.ALLOWED_HOSTS)"
    )
    # then
    assert "*" not in printed
    assert "localhost" in printed

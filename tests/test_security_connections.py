"""Issue 13's attacks on job connections, each with the answer it now gets (docs/security.md).

Every way of naming the gateway's own database, its secrets or its data directory from a job;
driver options that read host files; SQLite statements that reach beyond the job's file; state
carried by pooled connections; a source replaced by a rename (issue 14).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection as django_connection
from sqlalchemy import make_url, text
from sqlalchemy.exc import DatabaseError, OperationalError

from jobs import guard
from jobs.connections import InlineConnectionRefused, UnknownConnection, database_engine
from jobs.guard import ConnectionRefused
from jobs.models import AccessKey, ConnectionString, ExecutionStatus
from jobs.systems.db.url import create_db_engine, dispose_engines, to_url
from tests.syncdb import direct_job, execute, messages, rows, run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    yield
    dispose_engines()


def gateway_vendor() -> str:
    """The engine of the gateway's own database in this run: sqlite, postgresql or mysql
    (the suite runs on all three: DATABASE_URL, docs/security.md)."""
    return str(django_connection.vendor)


def on_sqlite() -> None:
    """Skip a test of SQLite file spellings when the gateway's database is a server."""
    if gateway_vendor() != "sqlite":
        pytest.skip(
            f"the gateway's database is on {gateway_vendor()} here (DATABASE_URL): its file "
            "spellings do not apply; the server tests below cover that database"
        )


def own_database() -> Path:
    on_sqlite()
    return Path(django_connection.settings_dict["NAME"])


def own_database_url() -> str:
    """A job connection string naming the database the gateway itself runs on, whatever its
    engine: the issue's attacks are run against that one."""
    db = django_connection.settings_dict
    if gateway_vendor() == "sqlite":
        return f"sqlite:///file:{db['NAME']}?mode=ro&uri=true"
    scheme = "postgresql" if gateway_vendor() == "postgresql" else "mysql+pymysql"
    user = db.get("USER") or ""
    password = f":{urllib.parse.quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"{scheme}://{user}{password}@{db.get('HOST') or '127.0.0.1'}{port}/{db['NAME']}"


def gateway_server_is(url: str) -> bool:
    """Whether `url` is on the MySQL/MariaDB server the gateway's own database lives on: the
    guard refuses every job connection to that server."""
    if gateway_vendor() != "mysql":
        return False
    parsed = make_url(url)
    db = django_connection.settings_dict
    return int(db.get("PORT") or 3306) == (parsed.port or 3306) and guard.same_host(
        parsed.host or "", str(db.get("HOST") or "")
    )


def data_dir() -> Path:
    return Path(settings.DATA_DIR)


# -- the gateway's own SQLite database, however it is written -------------------------------


def own_database_spellings(own: Path) -> list[str]:
    quoted = urllib.parse.quote(str(own))
    relative = os.path.relpath(own)
    return [
        f"sqlite:///{own}",
        f"sqlite:///file:{own}?mode=ro&uri=true",  # the reproduction
        f"sqlite:///file:{own}",
        f"sqlite:///file://localhost{quoted}?mode=ro",
        f"sqlite:///file:{quoted.replace('/', '%2F')}",
        f"sqlite:///{own.parent}/../{own.parent.name}/{own.name}",
        f"sqlite:///{relative}",
        f"sqlite:///{own}-wal",
        f"sqlite:///{own}-shm",
        f"Data Source={own}",
        f"Data Source=file:{own}?mode=ro",
    ]


@pytest.mark.parametrize("index", range(len(own_database_spellings(Path("/any/file")))))
def test_every_spelling_of_the_gateways_database_is_refused(index: int) -> None:
    value = own_database_spellings(own_database())[index]
    with pytest.raises(ConnectionRefused, match="gateway's own database"):
        create_db_engine("SQLite" if value.startswith("Data") else "", value)


def test_a_symlink_to_the_gateways_database_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "innocent.sqlite3"
    link.symlink_to(own_database())
    with pytest.raises(ConnectionRefused, match="gateway's own database"):
        create_db_engine("", f"sqlite:///{link}")


def test_a_hard_link_to_the_gateways_database_is_refused(tmp_path: Path) -> None:
    link = data_dir() / "drive_c" / "tmp" / "copy.sqlite3"
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(own_database(), link)
    except OSError as exc:  # another file system: a hard link cannot exist there at all
        pytest.skip(f"hard link not possible here: {exc}")
    try:
        with pytest.raises(ConnectionRefused, match="gateway's own database"):
            create_db_engine("", f"sqlite:///{link}")
    finally:
        link.unlink()


def test_a_symlink_swapped_in_after_the_engine_was_made_is_refused_at_connect(
    tmp_path: Path,
) -> None:
    # given: an engine on an ordinary file
    path = tmp_path / "source.sqlite3"
    execute(f"sqlite:///{path}", "CREATE TABLE t (id INTEGER)")
    engine = create_db_engine("", f"sqlite:///{path}")
    # when: the file becomes a link to the gateway's database
    path.unlink()
    path.symlink_to(own_database())
    # then
    with pytest.raises(ConnectionRefused, match="gateway's own database"):
        engine.connect()


@pytest.mark.parametrize(
    "name", ["fernet.key", "django-secret.key", "anything.sqlite3", "stage/x.sqlite3"]
)
def test_the_data_directory_outside_job_folders_and_the_secrets_are_refused(name: str) -> None:
    with pytest.raises(ConnectionRefused, match="gateway's"):
        create_db_engine("", f"sqlite:///{data_dir() / name}")


def test_a_file_in_a_jobs_folder_of_the_data_directory_is_allowed() -> None:
    path = data_dir() / "drive_c" / "tmp" / "job.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine("", f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER)"))
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 0


@pytest.mark.parametrize(
    "value",
    [
        "sqlite:///x.db?vfs=unix-none",
        "sqlite:///file:x.db?immutable=1",
        "sqlite:///x.db?mode=memory",
    ],
)
def test_sqlite_options_beyond_the_allow_list_are_refused(value: str) -> None:
    with pytest.raises(ConnectionRefused, match="not allowed"):
        to_url("", value)


# -- the attacks through real runs ----------------------------------------------------


def test_a_reader_on_the_gateways_database_fails_and_reads_nothing(tmp_path: Path) -> None:
    # given: the reader over the key table, on the database the gateway runs on
    target = f"sqlite:///{tmp_path / 'loot.sqlite3'}"
    source = own_database_url()
    job = direct_job(source, target, sql="SELECT * FROM jobs_accesskey", target="loot", keys="")
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert "gateway's own database" in execution.error_message
    assert not (tmp_path / "loot.sqlite3").exists()


def test_a_reader_on_the_gateways_database_is_refused_before_any_sql() -> None:
    with pytest.raises(ConnectionRefused, match="gateway's own database"):
        create_db_engine("", own_database_url())


def test_a_writer_cannot_mint_an_access_key_with_an_init_script(tmp_path: Path) -> None:
    # given: a harmless source and a writer aimed at the gateway's database
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    execute(source, "CREATE TABLE t (id INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    mint = (
        "INSERT INTO jobs_accesskey (name, key_hash, prefix, scope, read_only, can_decrypt, "
        "is_active, created_at) VALUES ('x', 'x', 'x', 'all', FALSE, TRUE, TRUE, '2024-01-01')"
    )
    keys_before = AccessKey.objects.count()
    job = direct_job(
        source,
        own_database_url().replace("mode=ro&", ""),
        sql="SELECT * FROM t",
        target="t",
        writer={"InitScript": mint},
    )
    # when
    execution = run(job)
    # then
    writer = job.direct_writer
    assert writer is not None
    failures = [e.error_message for e in writer.executions.all()] + [execution.error_message]
    assert any("gateway's own database" in message for message in failures)
    assert AccessKey.objects.count() == keys_before


def test_attach_in_an_init_script_is_refused_and_nothing_stays_attached(tmp_path: Path) -> None:
    # given: an ordinary SQLite target whose InitScript attaches the gateway's database
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    execute(source, "CREATE TABLE t (id INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    own_file = own_database() if gateway_vendor() == "sqlite" else data_dir() / "gateway.sqlite3"
    attach = f"ATTACH DATABASE '{own_file}' AS g"
    job = direct_job(
        source, target, sql="SELECT * FROM t", target="t", writer={"InitScript": attach}
    )
    # when
    run(job)
    # then: the writer failed on ATTACH, and the next connection to the same URL sees no `g`
    writer = job.direct_writer
    assert writer is not None
    assert any("not authorized" in (e.error_message or "") for e in writer.executions.all())
    engine = create_db_engine("", target)
    with engine.connect() as connection:
        schemas = [row[1] for row in connection.exec_driver_sql("PRAGMA database_list")]
        assert schemas == ["main"]
        with pytest.raises(OperationalError, match="no such table"):
            connection.execute(text("SELECT * FROM g.auth_user"))


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH DATABASE ':memory:' AS other",
        "DETACH DATABASE main",
        "VACUUM INTO '/tmp/gateway-copy.sqlite3'",
        "SELECT load_extension('/tmp/evil.so')",
        "PRAGMA writable_schema = ON",
        "PRAGMA trusted_schema = ON",
    ],
)
def test_job_sqlite_connections_refuse_statements_beyond_their_file(
    tmp_path: Path, statement: str
) -> None:
    # The DB-API connection itself, as the job's SQL reaches it (outside a transaction, which
    # VACUUM needs).
    raw = create_db_engine("", f"sqlite:///{tmp_path / 'job.sqlite3'}").raw_connection()
    try:
        # SQLite says "not authorized" (or "authorization denied" for VACUUM INTO)
        with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|authorization denied"):
            raw.cursor().execute(statement)
    finally:
        raw.close()
    assert not Path("/tmp/gateway-copy.sqlite3").exists()


def test_sqlite_master_cannot_be_written(tmp_path: Path) -> None:
    engine = create_db_engine("", f"sqlite:///{tmp_path / 'job.sqlite3'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (id INTEGER)")  # schema changes still work
        with pytest.raises(DatabaseError):
            connection.exec_driver_sql("UPDATE sqlite_master SET sql = 'x' WHERE name = 't'")
        connection.exec_driver_sql("DROP TABLE t")


def test_a_source_replaced_by_a_rename_is_read_fresh_on_the_next_run(tmp_path: Path) -> None:
    # given: a direct job that copied a 50-row source (issue 14: four runs read the old file)
    source_path = tmp_path / "source.sqlite3"
    source = f"sqlite:///{source_path}"
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    execute(source, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(
        source,
        "INSERT INTO films VALUES (:id, :title)",
        params=[{"id": i, "title": f"Film {i}"} for i in range(1, 51)],
    )
    job = direct_job(source, target, sql="SELECT * FROM films", target="films")
    assert run(job).status == ExecutionStatus.SUCCEEDED
    # when: a new file with fewer and changed rows is swapped in atomically
    replacement = tmp_path / "replacement.sqlite3"
    execute(f"sqlite:///{replacement}", "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(
        f"sqlite:///{replacement}",
        "INSERT INTO films VALUES (:id, :title)",
        params=[{"id": i, "title": f"New {i}"} for i in range(1, 31)],
    )
    os.replace(replacement, source_path)
    execution = run(job)
    # then: the very next run sees the new file
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target, "films") == [(i, f"New {i}") for i in range(1, 31)]


# -- inline connection strings and unknown keys -----------------------------------------------


def test_inline_connection_strings_are_off_by_default() -> None:
    from gateway import settings as production

    assert os.environ.get("GATEWAY_INLINE_CONNECTIONS") or not production.GATEWAY_INLINE_CONNECTIONS


def test_an_inline_connection_string_is_refused_at_run_when_off(
    settings: Any, tmp_path: Path
) -> None:
    settings.GATEWAY_INLINE_CONNECTIONS = False
    with pytest.raises(InlineConnectionRefused, match="GATEWAY_INLINE_CONNECTIONS"):
        database_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")


def test_an_unknown_key_says_no_connection_string_has_it() -> None:
    with pytest.raises(UnknownConnection, match="No connection string has the key 'enzo9550'"):
        database_engine("enzo9550")


def test_a_stored_connection_passes_the_guard_too() -> None:
    stored = ConnectionString(key="sneaky", system="", connection_type="DB")
    stored.value = own_database_url()
    stored.save()
    with pytest.raises(ConnectionRefused, match="gateway's own database"):
        database_engine("sneaky")


# -- PostgreSQL: the gateway's database on a server a job can reach ---------------------------


def as_gateway_database(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    engine = "postgresql" if parsed.get_backend_name() == "postgresql" else "mysql"
    return {
        "ENGINE": f"django.db.backends.{engine}",
        "NAME": parsed.database,
        "HOST": parsed.host,
        "PORT": parsed.port,
        "USER": parsed.username,
    }


@pytest.fixture
def gateway_on(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the guard see `url`'s database as the gateway's own (the fleet's configuration)."""

    def use(url: str) -> None:
        monkeypatch.setattr(guard, "own_databases", lambda: [as_gateway_database(url)])

    return use


def other_host_spellings(url: str) -> list[str]:
    parsed = make_url(url)
    hosts = ["localhost", "127.0.0.1", "127.0.0.2", socket.gethostname()]
    return [parsed.set(host=host).render_as_string(hide_password=False) for host in hosts]


@pytest.mark.postgres
def test_a_job_on_the_gateways_postgresql_database_is_refused(
    postgres_url: str, gateway_on: Any
) -> None:
    # given: the fleet's gateway database on this PostgreSQL server
    gateway_on(postgres_url)
    # then: by any name of this machine
    for value in other_host_spellings(postgres_url):
        with pytest.raises(ConnectionRefused, match="gateway's own database"):
            create_db_engine("", value)
    # and ADO.NET style
    parsed = make_url(postgres_url)
    ado = f"Data Source=localhost,{parsed.port};User Id=postgres;Initial Catalog={parsed.database}"
    with pytest.raises(ConnectionRefused, match="gateway's own database"):
        create_db_engine("PostgreSQL", ado)


@pytest.mark.postgres
def test_another_database_on_the_same_postgresql_server_is_a_jobs_to_use(
    postgres_url: str, gateway_on: Any
) -> None:
    gateway_on(make_url(postgres_url).set(database="gateway_elsewhere").render_as_string(False))
    with create_db_engine("", postgres_url).connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.postgres
@pytest.mark.parametrize("option", ["host=/tmp", "passfile=/etc/passwd", "options=-csearch_path=x"])
def test_postgresql_driver_options_beyond_the_allow_list_are_refused(
    postgres_url: str, option: str
) -> None:
    with pytest.raises(ConnectionRefused, match="not allowed"):
        create_db_engine("", f"{postgres_url}?{option}")


@pytest.mark.postgres
def test_postgresql_session_state_does_not_pass_to_the_next_job(postgres_url: str) -> None:
    engine = create_db_engine("", postgres_url)
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TEMP TABLE leftover (id int)")
        connection.exec_driver_sql("SET search_path TO pg_catalog")
        connection.commit()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW search_path").scalar() != "pg_catalog"
        with pytest.raises(DatabaseError):
            connection.exec_driver_sql("SELECT * FROM leftover")


# -- MariaDB: LOAD DATA LOCAL INFILE and the gateway on the same server -----------------------


@pytest.mark.mariadb
def test_local_infile_is_refused_in_the_url(mariadb_url: str) -> None:
    with pytest.raises(ConnectionRefused, match="local_infile"):
        create_db_engine("", f"{mariadb_url}&local_infile=1")
    with pytest.raises(ConnectionRefused, match="read_default_file"):
        create_db_engine("", f"{mariadb_url}&read_default_file=/etc/mysql/my.cnf")


@pytest.mark.mariadb
def test_load_data_local_infile_cannot_read_the_fernet_key(mariadb_url: str) -> None:
    if gateway_server_is(mariadb_url):
        pytest.skip("the gateway's own database is on this MariaDB server: no job reaches it")
    # given: a job's writer on an ordinary MariaDB database (the attack, minus the option)
    engine = create_db_engine("", mariadb_url)
    secret = data_dir() / "fernet.key"
    # when / then: the client never offers the file, whatever the server allows
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE loot (line TEXT)")
        with pytest.raises(DatabaseError):
            connection.exec_driver_sql(f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE loot")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM loot").scalar() == 0


@pytest.mark.mariadb
def test_the_mariadb_server_holding_the_gateways_database_is_refused(
    mariadb_url: str, gateway_on: Any
) -> None:
    # given: the gateway's database on this server; any database there is reachable from a session
    gateway_on(make_url(mariadb_url).set(database="gateway").render_as_string(False))
    for value in other_host_spellings(mariadb_url):
        with pytest.raises(ConnectionRefused, match="MySQL/MariaDB server"):
            create_db_engine("", value)


def test_sqlite_job_connections_are_not_pooled(tmp_path: Path) -> None:
    engine = create_db_engine("", f"sqlite:///{tmp_path / 'job.sqlite3'}")
    with engine.connect() as first:
        first_raw = first.connection.dbapi_connection
    with engine.connect() as second:
        assert second.connection.dbapi_connection is not first_raw
    assert isinstance(first_raw, sqlite3.Connection)


# -- through the DataZen API ------------------------------------------------------------------


def dynamic_job(connection: str) -> dict[str, Any]:
    return {
        "JobReader": {
            "SqlRead": "SELECT * FROM jobs_accesskey",
            "Path": "C:\\tmp\\datasync_reader",
            "ConnectionString": connection,
        }
    }


@pytest.mark.parametrize("endpoint", ["/job/dynamic?testrun=1", "/job"])
def test_the_api_refuses_an_inline_connection_string_with_403_when_off(
    datazen: Any, settings: Any, endpoint: str
) -> None:
    # given: the production default
    settings.GATEWAY_INLINE_CONNECTIONS = False
    body = dynamic_job(own_database_url())
    body["JobReader"]["JobKey"] = "loot"
    # when
    response = datazen.post(endpoint, body, format="json")
    # then: DataZen's error shape, and no job was made
    assert response.status_code == 403
    assert response.json()["StatusCode"] == 403
    assert "GATEWAY_INLINE_CONNECTIONS" in response.json()["Error"]
    from jobs.models import Job

    assert not Job.objects.exists()


def test_an_inline_string_allowed_by_the_operator_still_meets_the_guard(
    datazen: Any, settings: Any
) -> None:
    # given: inline strings on; the dynamic test run on the gateway's database
    settings.GATEWAY_INLINE_CONNECTIONS = True
    from jobs.models import Execution, Job

    response = datazen.post(
        "/job/dynamic?testrun=1",
        dynamic_job(own_database_url()),
        format="json",
    )
    assert response.status_code == 200
    # when: the queued run runs
    from jobs import runner

    created = Execution.objects.get(job=Job.objects.get(kind="reader"))
    claimed = runner.claim(created.pk)
    assert claimed is not None
    runner.run_claimed(claimed)
    claimed.refresh_from_db()
    # then: it failed on the guard and /job/output has nothing
    assert claimed.status == ExecutionStatus.FAILED
    assert "gateway's own database" in claimed.error_message
    output = datazen.get(f"/job/output?guid={claimed.guid}")
    assert "sha256" not in output.content.decode()
    assert "pbkdf2" not in output.content.decode()


def test_a_run_on_an_unknown_key_names_the_key(tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    job = direct_job("enzo9550", target, sql="SELECT 1", target="t")
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert "No connection string has the key 'enzo9550'" in execution.error_message
    assert "near character" not in "\n".join(messages(execution))


# -- secrets in displayed definitions --------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("postgresql://gw:pa/ss-word@db:5432/films", "postgresql://gw:.....@db:5432/films"),
        ("postgresql://gw:p@ss@db/films", "postgresql://gw:.....@db/films"),
        ("mysql://u:a:b@[::1]:3306/x?password=zz&charset=utf8",
         "mysql://u:.....@[::1]:3306/x?password=.....&charset=utf8"),
        ("Data Source=h;Password='se;cret';User Id=u", "Data Source=h;Password=.....;User Id=u"),
        ('Server=h;Pwd="a""b;c";Database=d', "Server=h;Pwd=.....;Database=d"),
        ("Server=x;PWD={a;b};Database=y", "Server=x;PWD=.....;Database=y"),
        ("Server=x;Password=pa/ss-word", "Server=x;Password=....."),
        ("Server=x;User Id=u", "Server=x;User Id=u"),
        ("enzo9550", "enzo9550"),
    ],
)  # fmt: skip
def test_get_dynamic_masks_secrets_whatever_their_characters(
    datazen: Any, sent: str, shown: str
) -> None:
    # given
    body = dynamic_job(sent)
    body["JobReader"]["Guid"] = "c0ffee"
    assert datazen.post("/job/dynamic", body, format="json").status_code == 200
    # when
    (reader,) = datazen.get("/job/dynamic?guid=c0ffee").json()
    # then
    assert reader["ConnectionString"] == shown
    for secret in ("pa/ss-word", "p@ss", "se;cret", "a;b", "zz", '"a""b;c"'):
        if secret in sent:
            assert secret not in reader["ConnectionString"]


# -- row values stay out of process logs ------------------------------------------------------


def test_row_values_are_never_written_to_process_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a test run (it logs its first record) and a writer whose insert fails
    caplog.set_level("DEBUG")
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    execute(source, "CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT)")
    execute(source, "INSERT INTO t VALUES (1, 'row-value-7f3a'), (2, 'row-value-7f3a')")
    execute(target, "CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT NOT NULL UNIQUE)")
    job = direct_job(source, target, sql="SELECT * FROM t", target="t")
    # when
    tested = run(job, testrun=True)
    failed = run(job)
    # then: the runs' own logs show what the job's client may see; the process log does not
    assert any("row-value-7f3a" in m for m in messages(tested))
    writer_errors = [e.error_message for e in job.direct_writer.executions.all()]  # type: ignore[union-attr]
    assert any("UNIQUE" in (m or "") for m in [*writer_errors, failed.error_message])
    assert "row-value-7f3a" not in caplog.text


# -- DataFlux: a SQL Lookup node on a stored connection aimed at the gateway ------------------


def test_a_flow_sql_lookup_on_the_gateways_database_is_a_flow_error() -> None:
    # given: an operator stored "crm" pointing at the gateway's own database (a mistake)
    from tests.test_dataflux_support import basic_client, execute, fresh_state, make_user, upload
    from tests.test_flows_examples import flow_id

    fresh_state()
    stored = ConnectionString(key="crm", system="", connection_type="DB")
    stored.value = own_database_url()
    stored.save()
    make_user("ann")
    client = basic_client("ann")
    upload(client, "Determine_Gender.ddf")
    upload(client, "Enrich_Contacts.ddf")
    # when
    response = execute(client, flow_id("Enrich_Contacts.ddf"), {})
    # then
    assert response.status_code == 400
    assert "gateway's own database" in response.json()["message"]


@pytest.mark.mariadb
def test_mariadb_session_state_does_not_pass_to_the_next_job(mariadb_url: str) -> None:
    if gateway_server_is(mariadb_url):
        pytest.skip("the gateway's own database is on this MariaDB server: no job reaches it")
    # given: a job that leaves a temporary table, a user variable and a session setting behind
    engine = create_db_engine("", mariadb_url)
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TEMPORARY TABLE leftover (id int)")
        connection.exec_driver_sql("SET @secret = 42, SESSION sql_mode = 'ANSI_QUOTES'")
        connection.commit()
    # when: the next job takes the pooled connection
    with engine.connect() as connection:
        # then: none of it is there, and the engine's character set still is
        assert connection.exec_driver_sql("SELECT @secret").scalar() is None
        assert "ANSI_QUOTES" not in connection.exec_driver_sql("SELECT @@sql_mode").scalar()
        assert connection.exec_driver_sql("SELECT @@character_set_client").scalar() == "utf8mb4"
        assert connection.exec_driver_sql("SELECT '日本🎬'").scalar() == "日本🎬"
        with pytest.raises(DatabaseError):
            connection.exec_driver_sql("SELECT * FROM leftover")

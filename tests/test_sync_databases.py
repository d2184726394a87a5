"""The sync engine against real PostgreSQL and MariaDB: every column type, cross-system jobs."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from jobs.models import ExecutionStatus
from jobs.systems.db.url import dispose_engines
from tests.syncdb import direct_job, execute, messages, rows, run, writer_execution

pytestmark = pytest.mark.django_db(transaction=False)

UTC = dt.UTC
PG_TYPED = """CREATE TABLE typed (
    id integer PRIMARY KEY, big bigint, small smallint, price numeric(12,4), huge numeric(38,10),
    ratio double precision, r4 real, name varchar(100), note text, flag boolean, day date,
    at timestamp, atz timestamptz, tm time, bin bytea, doc json)"""
MY_TYPED = """CREATE TABLE typed (
    id int PRIMARY KEY, big bigint, small smallint, price decimal(12,4), huge decimal(38,10),
    ratio double, r4 float, name varchar(100), note text, flag boolean, day date,
    at datetime(6), tm time(6), bin longblob)"""

VALUES = [
    {
        "id": 1,
        "big": 9223372036854775807,
        "small": -32768,
        "price": Decimal("12345678.1250"),
        "huge": Decimal("1234567890123456789012345678.0123456789"),
        "ratio": 0.1,
        "r4": 1.5,
        "name": "Zoë Ünïcode 日本語 🎬",
        "note": "line1\nline2\t'quoted' \"double\" \\ back",
        "flag": True,
        "day": dt.date(1999, 12, 31),
        "at": dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
        "atz": dt.datetime(2024, 6, 1, 12, 30, 0, 654321, tzinfo=UTC),
        "tm": dt.time(23, 59, 58, 999999),
        "bin": bytes(range(256)),
        "doc": '{"b": [1, 2], "a": "x"}',
    },
    {
        "id": 2,
        "big": -1,
        "small": 0,
        "price": Decimal("-0.0001"),
        "huge": Decimal("0E-10"),
        "ratio": -1e300,
        "r4": -0.25,
        "name": "",
        "note": "",
        "flag": False,
        "day": dt.date(1, 1, 1),
        "at": dt.datetime(1970, 1, 1),
        "atz": dt.datetime(1969, 12, 31, 23, 0, tzinfo=UTC),
        "tm": dt.time(0, 0),
        "bin": b"",
        "doc": "[]",
    },
    {"id": 3, **{k: None for k in ("big", "small", "price", "huge", "ratio", "r4", "name")}}
    | {k: None for k in ("note", "flag", "day", "at", "atz", "tm", "bin", "doc")},
]
MY_COLUMNS = [c for c in VALUES[0] if c not in ("atz", "doc")]


@pytest.fixture(autouse=True)
def _close_engines():
    yield
    dispose_engines()  # the fixtures drop their databases next


def insert(url: str, columns: list[str], values: list[dict]) -> None:
    names = ", ".join(columns)
    marks = ", ".join(f":{c}" for c in columns)
    execute(
        url,
        f"INSERT INTO typed ({names}) VALUES ({marks})",
        params=[{c: v.get(c) for c in columns} for v in values],
    )


def as_json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def exact(table_rows: list[tuple]) -> list[tuple]:
    """Rows with every value's type and representation (Decimal scale, float bits) visible."""
    return [tuple((type(v).__name__, repr(v)) for v in row) for row in table_rows]


def test_postgres_to_postgres_keeps_every_type_exactly(postgres_url: str) -> None:
    # given
    execute(postgres_url, PG_TYPED)
    insert(postgres_url, list(VALUES[0]), VALUES)
    job = direct_job(postgres_url, postgres_url, sql="SELECT * FROM typed", target="public.copy")
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert exact(rows(postgres_url, "copy")) == exact(rows(postgres_url, "typed"))


def test_mariadb_to_mariadb_keeps_every_type_exactly(mariadb_url: str) -> None:
    # given
    execute(mariadb_url, MY_TYPED)
    insert(mariadb_url, MY_COLUMNS, VALUES)
    job = direct_job(mariadb_url, mariadb_url, sql="SELECT * FROM typed", target="copy")
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert exact(rows(mariadb_url, "copy")) == exact(rows(mariadb_url, "typed"))


def test_postgres_to_mariadb_and_back(postgres_url: str, mariadb_url: str) -> None:
    # given
    execute(postgres_url, PG_TYPED)
    insert(postgres_url, list(VALUES[0]), VALUES)
    there = direct_job(postgres_url, mariadb_url, sql="SELECT * FROM typed", target="typed")
    back = direct_job(mariadb_url, postgres_url, sql="SELECT * FROM typed", target="back")
    # when
    first, second = run(there), run(back)
    # then
    assert first.status == ExecutionStatus.SUCCEEDED, first.error_message
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    source = rows(postgres_url, "typed")
    returned = rows(postgres_url, "back")
    atz, doc = list(VALUES[0]).index("atz"), list(VALUES[0]).index("doc")
    for original, copy in zip(source, returned, strict=True):
        for position, (a, b) in enumerate(zip(original, copy, strict=True)):
            if position == atz and a is not None:
                # MySQL has no zone-aware type: the instant comes back as UTC wall time
                assert b == a.astimezone(UTC).replace(tzinfo=None)
            elif position == doc and a is not None:
                assert as_json(b) == as_json(a)  # MariaDB keeps JSON as text
            else:
                assert (type(b), b) == (type(a), a), list(VALUES[0])[position]


def test_sqlite_to_postgres_updates_and_deletes(sqlite_url: str, postgres_url: str) -> None:
    # given
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    execute(
        sqlite_url,
        "INSERT INTO t VALUES (:id, :v)",
        params=[{"id": i, "v": f"v{i}"} for i in range(100)],
    )
    job = direct_job(sqlite_url, postgres_url, sql="SELECT * FROM t", target="t")
    run(job)
    execute(sqlite_url, "UPDATE t SET v = 'x' WHERE id < 10", "DELETE FROM t WHERE id >= 90")
    # when
    execution = run(job)
    # then
    assert (execution.record_count, execution.delete_count) == (10, 10)
    assert rows(postgres_url, "t") == rows(sqlite_url, "t")


def test_mariadb_composite_keys_to_postgres(mariadb_url: str, postgres_url: str) -> None:
    # given
    execute(
        mariadb_url,
        "CREATE TABLE order_lines (order_no varchar(20), line int, qty int,"
        " PRIMARY KEY (order_no, line))",
        "INSERT INTO order_lines VALUES ('A', 1, 5), ('A', 2, 6), ('B', 1, 7)",
    )
    job = direct_job(
        mariadb_url,
        postgres_url,
        sql="SELECT * FROM order_lines",
        target="order_lines",
        keys="order_no,line",
    )
    run(job)
    execute(
        mariadb_url,
        "UPDATE order_lines SET qty = 9 WHERE line = 1",
        "DELETE FROM order_lines WHERE order_no = 'A' AND line = 2",
    )
    # when
    execution = run(job)
    # then
    assert (execution.record_count, execution.delete_count) == (2, 1)
    assert rows(postgres_url, "order_lines", "order_no, line") == rows(
        mariadb_url, "order_lines", "order_no, line"
    )


def test_postgres_timestamp_boundary(postgres_url: str, mariadb_url: str) -> None:
    # given
    execute(
        postgres_url,
        "CREATE TABLE ev (id int PRIMARY KEY, v text, ts timestamptz)",
        "INSERT INTO ev VALUES (1, 'a', '2024-01-01T10:00:00Z'), (2, 'b', '2024-01-01T11:00:00Z')",
    )
    job = direct_job(
        postgres_url, mariadb_url, sql="SELECT * FROM ev", target="ev", timestamp_col="ts"
    )
    run(job)
    job.refresh_from_db()
    assert job.last_ts_pointer == "2024-01-01T11:00:00+00:00"
    execute(
        postgres_url,
        "INSERT INTO ev VALUES (3, 'c', '2024-01-01T11:00:00Z')",
        "UPDATE ev SET v = 'a2', ts = '2024-01-02T00:00:00Z' WHERE id = 1",
    )
    # when
    execution = run(job)
    # then
    assert execution.record_count == 2, messages(execution)
    assert [r[:2] for r in rows(mariadb_url, "ev")] == [r[:2] for r in rows(postgres_url, "ev")]


def test_wrong_password_fails_with_the_servers_message(postgres_url: str, sqlite_url: str) -> None:
    # given
    bad = postgres_url.replace("postgres@", "nobody_here:wrong@")
    job = direct_job(bad, sqlite_url, sql="SELECT 1 AS id", target="t")
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert 'role "nobody_here" does not exist' in execution.error_message


def test_mariadb_target_error_is_reported_and_nothing_half_applied(
    sqlite_url: str, mariadb_url: str
) -> None:
    # given: the target rejects one row (NOT NULL) in the middle of the change log
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    execute(
        sqlite_url,
        "INSERT INTO t VALUES (:id, :v)",
        params=[{"id": i, "v": None if i == 1500 else "x"} for i in range(3000)],
    )
    execute(mariadb_url, "CREATE TABLE t (id bigint PRIMARY KEY, v varchar(10) NOT NULL)")
    job = direct_job(sqlite_url, mariadb_url, sql="SELECT * FROM t", target="t")
    # when
    failed = run(job)
    # then
    assert failed.status == ExecutionStatus.FAILED
    assert "cannot be null" in failed.error_message
    assert "cannot be null" in writer_execution(failed).error_message
    assert rows(mariadb_url, "t") == []
    # and after the fix, the next run applies the pending change log
    execute(mariadb_url, "ALTER TABLE t MODIFY v varchar(10) NULL")
    assert run(job).status == ExecutionStatus.SUCCEEDED
    assert rows(mariadb_url, "t") == rows(sqlite_url, "t")


def test_bad_sql_fails_with_the_sources_message(mariadb_url: str, sqlite_url: str) -> None:
    # given
    job = direct_job(mariadb_url, sqlite_url, sql="SELEC nothing", target="t")
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert "You have an error in your SQL syntax" in execution.error_message


def test_init_and_final_scripts_run_around_the_apply(sqlite_url: str, postgres_url: str) -> None:
    # given
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    execute(sqlite_url, "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    execute(postgres_url, "CREATE TABLE audit (what text, at timestamptz DEFAULT now())")
    job = direct_job(
        sqlite_url,
        postgres_url,
        sql="SELECT * FROM t",
        target="t",
        options={
            "InitScript": "INSERT INTO audit (what) VALUES ('init')",
        },
        writer={"FinalScript": "INSERT INTO audit (what) SELECT 'final ' || count(*) FROM t"},
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert [r[0] for r in rows(postgres_url, "audit", "at, what")] == ["init", "final 2"]


def test_exec_timeout_stops_a_slow_target_and_nothing_is_applied(
    sqlite_url: str, postgres_url: str
) -> None:
    # given: a target whose inserts take two seconds each, and a one-second ExecTimeout
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    execute(sqlite_url, "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    execute(
        postgres_url,
        "CREATE TABLE t (id bigint PRIMARY KEY, v text)",
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
        "'BEGIN PERFORM pg_sleep(2); RETURN NEW; END'",
        "CREATE TRIGGER slow BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION slow()",
    )
    job = direct_job(
        sqlite_url, postgres_url, sql="SELECT * FROM t", target="t", options={"ExecTimeout": 1}
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert "canceling statement due to statement timeout" in execution.error_message
    assert rows(postgres_url, "t") == []


def test_auto_recreate_rebuilds_a_target_with_other_columns(
    sqlite_url: str, mariadb_url: str
) -> None:
    # given
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    execute(sqlite_url, "INSERT INTO t VALUES (1, 'a')")
    execute(mariadb_url, "CREATE TABLE t (id bigint PRIMARY KEY, old_column int)")
    job = direct_job(
        sqlite_url, mariadb_url, sql="SELECT * FROM t", target="t", options={"AutoRecreate": True}
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(mariadb_url, "t") == [(1, "a")]


def test_a_source_failing_mid_read_leaves_the_direct_target_untouched(
    postgres_url: str, sqlite_url: str
) -> None:
    # given: a query whose 15,000th row fails, after a first batch went to the writer
    job = direct_job(
        postgres_url,
        sqlite_url,
        sql="SELECT i AS id, 100 / (i - 15000) AS x FROM generate_series(1, 20000) AS i",
        target="t",
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_message == "division by zero"
    writer = writer_execution(execution)
    assert writer.status == ExecutionStatus.FAILED
    assert "nothing was applied" in writer.error_message
    assert rows(sqlite_url, "t") == []
    assert execution.package_file == ""

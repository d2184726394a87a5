"""Row digests pushed down into the source (jobs.systems.db.hashing), on every dialect.

A full-strategy re-run reads keys and digests, then the changed rows by key: every kind of
change (a value, its type, NULL-ness; inserts; deletes) must still reach the target exactly,
and a stage store kept under another hash scheme is re-sent once, never compared.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.models import ExecutionStatus, Job
from jobs.sync.plan import stage_path
from jobs.sync.stage import HASH_XXH3, StageStore
from jobs.systems.db.url import dispose_engines
from tests.syncdb import direct_job, execute, messages, rows, run

pytestmark = pytest.mark.django_db(transaction=False)

PUSHED = "Rows are hashed in the source"


@pytest.fixture(autouse=True)
def _close_engines():
    yield
    dispose_engines()  # the fixtures drop their databases next


@pytest.fixture
def target_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.sqlite3'}"


def stored_scheme(job: Job) -> str:
    store = StageStore(stage_path(job))
    try:
        return store.get_meta("row_hash")
    finally:
        store.close()


def counts(execution) -> tuple[int, int]:
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    return execution.record_count, execution.delete_count


def test_sqlite_sources_are_hashed_by_the_gateway_and_every_change_found(
    sqlite_url: str, target_url: str
) -> None:
    # given: a first load (SQLite cannot hash its rows cheaply: the gateway does)
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b REAL, c TEXT, d BLOB)")
    execute(
        sqlite_url,
        "INSERT INTO t VALUES (:id, :a, :b, :c, :d)",
        params=[
            {"id": i, "a": i, "b": i / 3, "c": f"row {i} é", "d": bytes([i % 256])}
            for i in range(1, 2001)
        ],
    )
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM t", target="t")
    assert counts(run(job)) == (2000, 0)
    assert stored_scheme(job) == HASH_XXH3
    # when: a value changes type only (1 → '1'), a REAL in its last digit, a text to NULL,
    # a blob; a row goes, one comes
    execute(
        sqlite_url,
        "UPDATE t SET a = CAST(a AS TEXT) WHERE id = 1",
        "UPDATE t SET b = b + 1e-15 WHERE id = 2",
        "UPDATE t SET c = NULL WHERE id = 3",
        "UPDATE t SET d = x'00ff' WHERE id = 1500",
        "DELETE FROM t WHERE id = 1000",
        "INSERT INTO t VALUES (5000, 5, 0.5, 'new', NULL)",
    )
    changed = run(job)
    unchanged = run(job)
    # then
    assert counts(changed) == (5, 1)
    assert PUSHED not in "\n".join(messages(changed))
    assert "2000 rows read" in "\n".join(messages(changed))
    # (the target's column `a` was created INTEGER from the first load: '1' is stored as 1)
    assert rows(target_url, "t") == [(r[0], int(r[1]), *r[2:]) for r in rows(sqlite_url, "t")]
    assert counts(unchanged) == (0, 0)


def test_a_store_under_another_hash_scheme_is_resent_once_with_its_deletes(
    sqlite_url: str, target_url: str
) -> None:
    # given: a first load whose stage store is then marked as hashed by a source
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    execute(
        sqlite_url,
        "INSERT INTO t VALUES (:id, :v)",
        params=[{"id": i, "v": f"v{i}"} for i in range(1, 101)],
    )
    job = direct_job(sqlite_url, target_url, sql="SELECT * FROM t", target="t")
    run(job)
    store = StageStore(stage_path(job))
    store.set_meta("row_hash", "pg16:hashtextextended(row::text)")
    store.close()
    execute(sqlite_url, "DELETE FROM t WHERE id = 7")
    # when
    resent = run(job)
    after = run(job)
    # then: every row once (no comparison across schemes), the delete still found
    assert counts(resent) == (99, 1)
    assert "every row is sent once" in "\n".join(messages(resent))
    assert rows(target_url, "t") == rows(sqlite_url, "t")
    assert stored_scheme(job) == HASH_XXH3
    assert counts(after) == (0, 0)


def test_a_pipeline_keeps_the_gateway_hashing(postgres_url: str) -> None:
    # given: a job whose rows are changed by a pipeline (the source's rows are not the ones
    # compared), on a source that could hash them
    execute(postgres_url, "CREATE TABLE t (id bigint PRIMARY KEY, v text)")
    execute(postgres_url, "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    job = direct_job(
        postgres_url,
        postgres_url,
        sql="SELECT * FROM t",
        target="t_copy",
        reader={"PipelineDef": [{"Name": "DataFilter", "FilterType": 0, "Filter": "id > 1"}]},
    )
    run(job)
    execute(postgres_url, "UPDATE t SET v = 'c' WHERE id = 2")
    # when
    second = run(job)
    # then
    assert counts(second) == (1, 0)
    assert PUSHED not in "\n".join(messages(second))
    assert stored_scheme(job) == HASH_XXH3
    assert rows(postgres_url, "t_copy") == [(2, "c")]


TYPED_ROWS = [
    (1, 10, Decimal("1.25"), 0.1, "a é", dt.date(2024, 1, 1), None),
    (2, None, None, None, None, None, None),
    (3, -5, Decimal("-0.01"), -1e300, "", dt.date(1, 1, 1), b"\x00\xff"),
]


def _seed(url: str, dialect: str) -> None:
    binary = "bytea" if dialect == "postgresql" else "longblob"
    execute(
        url,
        f"CREATE TABLE t (id bigint PRIMARY KEY, n integer, p numeric(12,2), f double precision, "
        f"s varchar(50), d date, b {binary})",
    )
    execute(
        url,
        "INSERT INTO t VALUES (:id, :n, :p, :f, :s, :d, :b)",
        params=[dict(zip(["id", "n", "p", "f", "s", "d", "b"], r, strict=True)) for r in TYPED_ROWS]
        + [
            {"id": i, "n": i, "p": Decimal(i), "f": i / 7, "s": f"r{i}", "d": None, "b": None}
            for i in range(10, 1200)
        ],
    )


def _server_run(url: str, dialect: str) -> None:
    _seed(url, dialect)
    job = direct_job(url, url, sql="SELECT * FROM t", target="t_copy")
    assert counts(run(job)) == (1193, 0)
    execute(
        url,
        "UPDATE t SET n = 11 WHERE id = 1",
        "UPDATE t SET p = 0 WHERE id = 2",
        "UPDATE t SET s = 'a é ' WHERE id = 1 + 2",
        "UPDATE t SET f = f * 2 WHERE id = 500",
        "UPDATE t SET b = NULL WHERE id = 3",
        "DELETE FROM t WHERE id = 700",
        "INSERT INTO t (id, s) VALUES (5000, 'new')",
    )
    changed = run(job)
    unchanged = run(job)
    assert counts(changed) == (5, 1)
    assert PUSHED in "\n".join(messages(changed))
    assert rows(url, "t_copy") == rows(url, "t")
    assert counts(unchanged) == (0, 0)


def test_postgres_rerun_reads_digests(postgres_url: str) -> None:
    _server_run(postgres_url, "postgresql")


def test_mariadb_rerun_reads_digests(mariadb_url: str) -> None:
    _server_run(mariadb_url, "mysql")


def test_postgres_first_load_falls_back_to_upserts_on_a_repeated_key(postgres_url: str) -> None:
    # given: a source that repeats a key in a later batch (a 10,000-row read batch apart)
    execute(postgres_url, "CREATE TABLE t (id bigint, v text)")
    execute(
        postgres_url,
        "INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 10500) AS i",
        "INSERT INTO t VALUES (1, 'again')",
    )
    job = direct_job(
        postgres_url,
        postgres_url,
        sql="SELECT id, v FROM t ORDER BY (v = 'again'), id",
        target="t_copy",
    )
    # when
    execution = run(job)
    # then: the later row wins, as with upserts all along
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    copied = rows(postgres_url, "t_copy")
    assert len(copied) == 10500
    assert copied[0] == (1, "again")
    assert copied[1:] == [(i, f"v{i}") for i in range(2, 10501)]


def test_postgres_rerun_with_every_row_changed_reads_them_by_key_in_batches(
    postgres_url: str,
) -> None:
    # given: more changed rows than one read batch (10,000) holds
    execute(postgres_url, "CREATE TABLE t (id bigint PRIMARY KEY, v text)")
    execute(postgres_url, "INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 10050) AS i")
    job = direct_job(postgres_url, postgres_url, sql="SELECT id, v FROM t", target="t_copy")
    run(job)
    execute(postgres_url, "UPDATE t SET v = v || '!'", "DELETE FROM t WHERE id = 5")
    # when
    execution = run(job)
    # then
    assert counts(execution) == (10049, 1)
    assert PUSHED in "\n".join(messages(execution))
    assert rows(postgres_url, "t_copy") == rows(postgres_url, "t")


def _fold_twin(value: int) -> int:
    """Another int8 whose 32-bit fold (high half XOR low half) equals `value`'s: PostgreSQL's
    own int8 hash cannot tell the two apart."""
    high, low = value >> 32, value & 0xFFFFFFFF
    return (low << 32) | high


def test_postgres_digest_sees_changes_its_types_own_hashes_would_miss(
    postgres_url: str, target_url: str
) -> None:
    # given: a row of every type whose hash equates distinct values, or hashes the text
    epoch = dt.datetime(2000, 1, 1)
    at = (177_000 << 32) | 1000  # microseconds after 2000-01-01, PostgreSQL's epoch
    execute(
        postgres_url,
        "CREATE COLLATION IF NOT EXISTS case_insensitive "
        "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
        "CREATE TABLE t (id bigint PRIMARY KEY, big bigint, at timestamp, n numeric, "
        "ci text COLLATE case_insensitive, span interval, doc jsonb)",
    )
    execute(
        postgres_url,
        "INSERT INTO t VALUES (:id, 5, :at, 1.0, 'a', '1 day', '{\"a\": 1.0}')",
        params=[{"id": i, "at": epoch + dt.timedelta(microseconds=at)} for i in range(1, 8)],
    )
    job = direct_job(postgres_url, target_url, sql="SELECT * FROM t", target="t")
    assert counts(run(job)) == (7, 0)
    assert stored_scheme(job).endswith(":hash_record_extended(typed)")
    # when: each row changes one value to one its type's hash equates with the old one
    twin = epoch + dt.timedelta(microseconds=_fold_twin(at))
    execute(
        postgres_url,
        f"UPDATE t SET big = {_fold_twin(5)} WHERE id = 1",
        "UPDATE t SET n = 1.00 WHERE id = 3",
        "UPDATE t SET ci = 'A' WHERE id = 4",
        "UPDATE t SET span = '24 hours' WHERE id = 5",
        "UPDATE t SET doc = '{\"a\": 1.00}' WHERE id = 6",
    )
    execute(postgres_url, "UPDATE t SET at = :at WHERE id = 2", params=[{"at": twin}])
    changed = run(job)
    # then: every one is found (row 7 did not change)
    assert counts(changed) == (6, 0)
    assert PUSHED in "\n".join(messages(changed))
    assert counts(run(job)) == (0, 0)

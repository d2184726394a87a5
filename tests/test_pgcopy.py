"""A PostgreSQL first load read as text COPY lines (jobs.systems.pgcopy): the lines decode into
exactly the cursor reader's tuples and digests, travel through the change log, reach every kind
of target exactly, and the next run compares with the digests they brought."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.models import ExecutionStatus
from jobs.sync.changelog import COPY_TEXT, ChangeLogReader, ChangeLogWriter, Header
from jobs.systems.batch import Column
from jobs.systems.db import hashing
from jobs.systems.db.reader import copy_columns, read_batches, read_copy_batches
from jobs.systems.db.url import create_db_engine, dispose_engines
from jobs.systems.pgcopy import CopyRows, decode
from tests.syncdb import direct_job, execute, messages, rows, run

pytestmark = pytest.mark.django_db(transaction=False)

UTC = dt.UTC
TABLE = """CREATE TABLE odd (
    id bigint PRIMARY KEY, small smallint, i4 integer, price numeric(12,4), free numeric,
    ratio double precision, r4 real, code char(5), name varchar(40), note text, flag boolean,
    day date, at timestamp, atz timestamptz, tm time, bin bytea)"""
# Every escape COPY writes, a text that reads like NULL, float specials and extremes.
NASTY = "back\\slash\ttab\nnew\rcr\bbs\fff\vvt \\N é 日本 🎬"
VALUES = [
    (
        1,
        -32768,
        2147483647,
        Decimal("-12345678.1250"),
        Decimal("1E+30"),
        0.1,
        1.5,
        "ab",
        NASTY,
        "\\N",
        True,
        dt.date(1, 1, 1),
        dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
        dt.datetime(1969, 12, 31, 23, 0, 0, 1, tzinfo=UTC),
        dt.time(23, 59, 58, 999999),
        bytes(range(256)),
    ),
    (
        2,
        0,
        0,
        Decimal("0.0000"),
        Decimal("NaN"),
        float("nan"),
        float("inf"),
        "",
        "",
        "",
        False,
        dt.date(9999, 12, 31),
        dt.datetime(1970, 1, 1),
        dt.datetime(2024, 6, 1, tzinfo=UTC),
        dt.time(0, 0),
        b"",
    ),
    (
        3,
        None,
        None,
        None,
        None,
        5e-324,
        float("-inf"),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ),
    (
        4,
        7,
        8,
        Decimal("1.5"),
        Decimal("-0.000000000001"),
        -1e300,
        -0.25,
        "x",
        "\\",
        "\t",
        True,
        dt.date(2000, 2, 29),
        dt.datetime(2000, 1, 1, 0, 0, 0, 500000),
        dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
        dt.time(12, 0, 0, 1),
        b"\\\x00\n",
    ),
]
NAMES = "id, small, i4, price, free, ratio, r4, code, name, note, flag, day, at, atz, tm, bin"


@pytest.fixture(autouse=True)
def _close_engines():
    yield
    dispose_engines()  # the fixtures drop their databases next


def fill(url: str, values: list[tuple] = VALUES) -> None:
    execute(url, TABLE)
    marks = ", ".join(f":c{i}" for i in range(len(values[0])))
    execute(
        url,
        f"INSERT INTO odd ({NAMES}) VALUES ({marks})",
        params=[{f"c{i}": v for i, v in enumerate(row)} for row in values],
    )


def exact(table_rows: list[tuple]) -> list[tuple]:
    """Every value's type and representation (NaN equal to itself, Decimal scale visible)."""
    return [tuple((type(v).__name__, repr(v)) for v in row) for row in table_rows]


def test_copy_lines_decode_to_the_cursor_readers_rows_and_digests(postgres_url: str) -> None:
    # given
    fill(postgres_url)
    engine = create_db_engine("PostgreSQL", postgres_url)
    sql = "SELECT * FROM odd ORDER BY id"
    columns = copy_columns(engine, sql)
    assert columns is not None
    names = [c.name for c in columns]
    # when
    copied = list(read_copy_batches(engine, hashing.copy_rows_sql(engine, sql, names), columns))
    cursor = list(read_batches(engine, hashing.hashed_rows_sql(engine, sql, names), hashed=True))
    # then
    assert [c.columns for c in copied] == [b.columns for b in cursor]
    assert isinstance(copied[0].rows, CopyRows)
    assert exact(list(copied[0].rows)) == exact(cursor[0].rows)
    assert copied[0].hashes == cursor[0].hashes
    assert copied[0].rows.ints(0) == [1, 2, 3, 4]
    assert copied[0].rows.ints(7) is None  # a text column is never read as ints


def test_batches_of_copy_lines_cut_between_rows(postgres_url: str) -> None:
    execute(postgres_url, "CREATE TABLE t (id bigint PRIMARY KEY, v text)")
    execute(postgres_url, "INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 25) AS i")
    engine = create_db_engine("PostgreSQL", postgres_url)
    columns = copy_columns(engine, "SELECT * FROM t")
    assert columns is not None
    sql = hashing.copy_rows_sql(engine, "SELECT * FROM t ORDER BY id", ["id", "v"])
    batches = list(read_copy_batches(engine, sql, columns, batch_size=10))
    assert [len(b.rows) for b in batches] == [10, 10, 5]
    assert [row for b in batches for row in b.rows] == [(i, f"v{i}") for i in range(1, 26)]
    empty = hashing.copy_rows_sql(engine, "SELECT * FROM t WHERE id < 0", ["id", "v"])
    assert [len(b.rows) for b in read_copy_batches(engine, empty, columns)] == [0]


def test_types_copy_cannot_give_exactly_keep_the_cursor_reader(postgres_url: str) -> None:
    execute(postgres_url, "CREATE TABLE j (id bigint PRIMARY KEY, doc json, u uuid)")
    engine = create_db_engine("PostgreSQL", postgres_url)
    assert copy_columns(engine, "SELECT id, doc FROM j") is None
    assert copy_columns(engine, "SELECT id, u FROM j") is None
    assert copy_columns(engine, "SELECT id FROM j") is not None


def test_copy_frames_go_through_the_change_log_as_they_came(tmp_path: Path) -> None:
    columns = [Column("id", "integer"), Column("v", "string"), Column("d", "date")]
    data = b"1\ta\\tb\t2024-01-02\n2\t\\N\t\\N\n"
    writer = ChangeLogWriter(tmp_path / "j_1.eds", Header("j", "1", columns, ["id"]))
    writer.write_upserts(CopyRows(data, 2, columns))  # type: ignore[arg-type]
    writer.write_deletes([(3,)])
    writer.commit()
    with ChangeLogReader(tmp_path / "j_1.eds") as log:
        frames = list(log.frames())
    assert isinstance(frames[0].rows, CopyRows) and bytes(frames[0].rows.data) == data
    assert list(frames[0].rows) == [(1, "a\tb", dt.date(2024, 1, 2)), (2, None, None)]
    assert frames[1].is_delete and frames[1].rows == [(3,)]
    assert COPY_TEXT == b"P"


def test_decode_refuses_rows_of_another_width() -> None:
    with pytest.raises(ValueError, match="fields"):
        decode(b"1\t2\n", ["integer"])
    assert math.isnan(decode(b"NaN\n", ["float"])[0][0])


@pytest.mark.parametrize("target", ["postgres", "sqlite"])
def test_first_load_by_copy_reaches_the_target_exactly_and_the_next_run_compares(
    postgres_url: str, tmp_path: Path, target: str
) -> None:
    # given
    fill(postgres_url)
    target_url = postgres_url if target == "postgres" else f"sqlite:///{tmp_path / 't.sqlite3'}"
    job = direct_job(postgres_url, target_url, sql=f"SELECT {NAMES} FROM odd", target="copy")
    # when
    first = run(job)
    unchanged = run(job)
    execute(
        postgres_url,
        "UPDATE odd SET note = note || '!' WHERE id = 4",
        "DELETE FROM odd WHERE id = 2",
    )
    changed = run(job)
    # then
    for execution in (first, unchanged, changed):
        assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert (first.record_count, unchanged.record_count, unchanged.delete_count) == (4, 0, 0)
    assert (changed.record_count, changed.delete_count) == (1, 1)
    assert "Rows are hashed in the source" in "\n".join(messages(unchanged))
    if target == "postgres":
        assert exact(rows(postgres_url, "copy")) == exact(rows(postgres_url, "odd"))
    else:
        copied = rows(target_url, "copy")
        assert [r[0] for r in copied] == [1, 3, 4]
        assert copied[0][9] == "\\N" and copied[0][8] == NASTY and copied[2][9] == "\t!"
        assert copied[0][15] == bytes(range(256)) and copied[1][6] == -math.inf

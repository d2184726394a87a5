"""The shared expression language: results over rows, conditions, and what it refuses."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
from pathlib import Path

import pytest

from jobs.expressions import (
    ExpressionError,
    compile_condition,
    compile_expression,
    register_function,
)

COLUMNS = ["Name", "Age", "Full Name"]
ROWS = [("bob", 42, "Bob Smith"), ("alice", 7, "Alice Jones"), ("carol", None, None)]


def test_expression_gives_one_value_per_row() -> None:
    # given
    expression = compile_expression("upper(Name) || ':' || coalesce(Age * 2, 'none')", COLUMNS)
    # when
    values = expression.evaluate(ROWS)
    # then
    assert values == ["BOB:84", "ALICE:14", "CAROL:none"]


def test_quoted_column_names_with_spaces() -> None:
    expression = compile_expression('lower("Full Name")', COLUMNS)
    assert expression.evaluate(ROWS) == ["bob smith", "alice jones", None]


def test_case_cast_like_and_date_functions() -> None:
    expression = compile_expression(
        "CASE WHEN Name LIKE 'a%' THEN 'A' ELSE CAST(Age AS TEXT) END", COLUMNS
    )
    assert expression.evaluate(ROWS) == ["42", "A", None]
    born = compile_expression("date(d, '+1 day')", ["d"])
    assert born.evaluate([(dt.date(2014, 12, 31),)]) == ["2015-01-01"]


def test_decimal_values_are_numbers() -> None:
    expression = compile_expression("x * 2", ["x"])
    assert expression.evaluate([(decimal.Decimal("2.5"),), (decimal.Decimal("3"),)]) == [5.0, 6]


def test_condition_keeps_rows_where_true() -> None:
    # given
    adults = compile_condition("Age >= 18 OR Name = 'carol'", COLUMNS)
    # when
    kept = adults.filter(ROWS)
    # then
    assert kept == [ROWS[0], ROWS[2]]
    assert adults.matches(ROWS) == [True, False, True]


def test_null_condition_drops_the_row() -> None:
    assert compile_condition("Age > 1", COLUMNS).filter(ROWS) == ROWS[:2]


def test_empty_batch() -> None:
    assert compile_expression("Age + 1", COLUMNS).evaluate([]) == []
    assert compile_condition("Age > 1", COLUMNS).filter([]) == []


def test_unknown_column_is_named() -> None:
    with pytest.raises(ExpressionError, match="no such column: Salary"):
        compile_expression("Salary * 2", COLUMNS)


def test_syntax_error_is_reported() -> None:
    with pytest.raises(ExpressionError, match="syntax error"):
        compile_expression("Age +* 2", COLUMNS)


def test_empty_expression_is_refused() -> None:
    with pytest.raises(ExpressionError, match="empty"):
        compile_expression("   ", COLUMNS)


def test_row_of_wrong_width_is_refused() -> None:
    expression = compile_expression("Age", COLUMNS)
    with pytest.raises(ExpressionError, match="row 2 has 2 values, expected 3"):
        expression.evaluate([("a", 1, "x"), ("b", 2)])


def test_aggregates_are_refused() -> None:
    with pytest.raises(ExpressionError, match="aggregate"):
        compile_expression("max(Age)", COLUMNS)
    with pytest.raises(ExpressionError, match="count"):
        compile_expression("count(*)", COLUMNS)


def test_registered_function_is_callable() -> None:
    # given
    register_function("test_reverse", 1, lambda s: s[::-1] if s is not None else None)
    # when
    expression = compile_expression("test_reverse(Name)", COLUMNS)
    # then
    assert expression.evaluate(ROWS) == ["bob", "ecila", "lorac"]


def test_each_thread_evaluates_on_its_own_connection() -> None:
    expression = compile_expression("Age + 1", COLUMNS)
    results: list[list[object]] = []

    def work() -> None:
        results.append(expression.evaluate(ROWS))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[43, 8, None]] * 4


@pytest.mark.parametrize(
    ("attempt", "reason"),
    [
        ("1) FROM sqlite_master WHERE (1", "sqlite_master"),
        ("(SELECT count(*) FROM sqlite_temp_master)", "not allowed"),
        ("(SELECT name FROM sqlite_master)", "not allowed"),
        ("(SELECT 1 FROM jobs_job)", "no such table|not allowed"),
        ("(SELECT Name FROM batch)", "not allowed"),
        ("(SELECT Name FROM rows_1)", "no such table|not allowed"),
        ("1; ATTACH DATABASE '/etc/passwd' AS x", "syntax error"),
        ("1\n) FROM batch; ATTACH DATABASE 'x.db' AS x; SELECT (1", "one statement"),
        ("load_extension('/usr/lib/x86_64-linux-gnu/libsqlite3.so')", "load_extension"),
        ("readfile('/etc/passwd')", "readfile"),
        ("writefile('/tmp/pwned', 'x')", "writefile"),
        ("1) FROM pragma_table_info('rows_1') WHERE (1", "not allowed"),
        ("(SELECT * FROM pragma_database_list)", "not allowed"),
        ("sqlite_version()", "sqlite_version"),
        ("randomblob(1000000000)", "randomblob"),
        ("zeroblob(1000000000)", "zeroblob"),
        ("fts3_tokenizer('simple')", "fts3_tokenizer"),
        ("(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT 1)", "not"),
        ("Name) FROM batch UNION SELECT sql FROM sqlite_temp_master --", "not allowed|syntax"),
        (
            "Name) FROM batch UNION SELECT sql FROM sqlite_temp_master UNION SELECT (1",
            "not allowed",
        ),
        ("1) FROM json_each('[1]') UNION SELECT (1", "not allowed|ORDER BY"),
        ("?2", "bindings"),
        (":name", "binding"),
    ],
)
def test_malicious_expressions_are_refused(attempt: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason):
        compile_expression(attempt, COLUMNS).evaluate(ROWS)


def test_attach_cannot_create_or_read_a_file(tmp_path: Path) -> None:
    target = tmp_path / "stolen.db"
    for attempt in (
        f"1) FROM rows_1; ATTACH '{target}' AS s; SELECT (1",
        f"(SELECT 1 FROM (SELECT 1) WHERE 0) OR sqlite_compileoption_used('{target}')",
    ):
        with pytest.raises(ExpressionError):
            compile_expression(attempt, COLUMNS)
    assert not target.exists()


def test_condition_cannot_read_other_tables() -> None:
    with pytest.raises(ExpressionError, match="not allowed"):
        compile_condition("Name IN (SELECT name FROM sqlite_temp_master)", COLUMNS)
    with pytest.raises(ExpressionError, match="not allowed"):
        compile_condition("1) UNION SELECT key AS rowid FROM json_each('[7]') WHERE (1", COLUMNS)


def test_the_one_parameter_is_the_batch_itself() -> None:
    # The rows travel as one JSON document bound as ?1: an expression naming it reads its own
    # batch and nothing else.
    assert compile_expression("?1", COLUMNS).evaluate(ROWS[:1]) == ['[["bob", 42, "Bob Smith"]]']


@pytest.mark.parametrize(
    "value",
    [b"\x00\xffblob", "nul\x00inside", 2**63 - 1, -(2**63), float("nan"), 1.5e300, "é😀", None],
)
def test_every_value_comes_back_as_itself(value: object) -> None:
    # Values JSON cannot carry exactly (blobs, NUL, NaN) go through the row table instead.
    expression = compile_expression("x", ["x", "y"])
    got = expression.evaluate([(value, 1), (1, value)])
    if isinstance(value, float) and value != value:
        assert got == [None, 1]  # SQLite stores NaN as NULL
    else:
        assert got == [value, 1]
        assert type(got[0]) is type(value)


def test_integers_past_64_bits_are_refused_on_either_path() -> None:
    expression = compile_expression("x", ["x"])
    with pytest.raises(ExpressionError, match="cannot be used"):
        expression.evaluate([(1,), (2**64,)])
    with pytest.raises(ExpressionError, match="cannot be used"):
        expression.evaluate([(b"blob",), (-(2**63) - 1,)])


def test_huge_strings_are_stopped() -> None:
    expression = compile_expression("length(replace(printf('%.*c', 900000, 'x'), 'x', x))", ["x"])
    with pytest.raises(ExpressionError, match="too big"):
        expression.evaluate([("yy",)])


def test_long_evaluation_is_stopped() -> None:
    expression = compile_expression(
        "length(replace(printf('%.*c', 200000 + x - x, 'x'), 'x', 'y'))", ["x"], timeout=0.05
    )
    with pytest.raises(ExpressionError, match="too long"):
        expression.evaluate([(n,) for n in range(5000)])


def test_values_beyond_64_bits_are_an_expression_error() -> None:
    expression = compile_expression("x + 1", ["x"])
    with pytest.raises(ExpressionError, match="cannot be used"):
        expression.evaluate([(2**70,)])


def test_plain_rows_need_no_row_table() -> None:
    # The fast path: ints, reals, text and NULLs travel as JSON; no INSERT, no transaction.
    from jobs import expressions

    tables: list[dict] = []

    def work() -> None:
        compile_expression("upper(Name) || Age", COLUMNS).evaluate(ROWS)
        compile_condition("Age > 1", COLUMNS).filter(ROWS)
        tables.append(dict(expressions._sandbox().tables))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert tables == [{}]


def test_large_batches_give_the_same_answers_through_the_row_table() -> None:
    from jobs.expressions import JSON_MAX_ROWS

    rows = [(f"name {n}", n, None if n % 7 else "x") for n in range(JSON_MAX_ROWS * 2)]
    expression = compile_expression(
        "upper(Name) || (Age * 1.5) || coalesce(\"Full Name\", '-')", COLUMNS
    )
    condition = compile_condition("Age % 3 = 0", COLUMNS)
    small = [
        v
        for start in range(0, len(rows), 100)
        for v in expression.evaluate(rows[start : start + 100])
    ]
    assert expression.evaluate(rows) == small
    assert condition.filter(rows) == [row for row in rows if row[1] % 3 == 0]


def test_steps_run_in_one_statement_and_refuse_what_one_expression_would() -> None:
    from jobs.expressions import CompiledSteps

    steps = CompiledSteps(
        [("First", "lower(substr(Name, 1, 3))"), ("Name", "First || '.'"), ("First", "Age")],
        COLUMNS,
    )
    assert steps.targets == ["First", "Name"]
    assert steps.evaluate(ROWS) == [(42, "bob."), (7, "ali."), (None, "car.")]
    for attempt in ("(SELECT 1)", "1\n) FROM batch), evil AS (SELECT 1", "max(Age)"):
        with pytest.raises(ExpressionError):
            CompiledSteps([("A", "1"), ("B", attempt)], COLUMNS)

"""The column-at-a-time fast path gives exactly SQLite's answers, and steps aside otherwise."""

from __future__ import annotations

import random
from itertools import starmap
from operator import itemgetter
from typing import Any

import pytest

from jobs.expressions import ExpressionError
from jobs.pipeline import compile_pipeline
from jobs.pipeline.fastsql import FastExpression, Unsupported
from jobs.pipeline.sql import BatchExpression
from jobs.systems.batch import Batch, Column

ROWS = [
    (1, 2.5, "books", "a", -7),
    (2, 0.0, "films", "b", 3),
    (3, None, "music", None, 0),
    (None, 1e300, "books", "ab", 9223372036854775807 // 2),
    (-5, -2.25, None, "", -2),
    (7, 250.0, "toys", "Z", 2),
]
BATCH = Batch(
    [
        Column("id", "integer"),
        Column("amount", "float"),
        Column("category"),
        Column("code"),
        Column("n", "integer"),
    ],
    ROWS,
)

EXPRESSIONS = [
    "amount * 1.2",
    "id + n",
    "id - 1",
    "-amount",
    "id / n",
    "n / 2",
    "amount / n",
    "id * 2 + n * 3 - 1",
    "(id + 1) * (n - 1)",
    "amount >= 250",
    "id = 1.0",
    "id <> 2",
    "id != n",
    "category = 'books'",
    "category < code",
    "code || '-' || category",
    "id || code",
    "amount > 1 AND category IN ('books', 'toys')",
    "amount > 1 OR id IS NULL",
    "NOT (id > 2)",
    "category NOT IN ('books', NULL)",
    "id IN (1, 7, NULL)",
    "code IS NOT NULL",
    "coalesce(code, category, 'none')",
    "ifnull(id, -1) * 2",
    "NULL + id",
    "id = NULL",
    "'DATAZEN'",
    "1 + 2 * 3",
    '"amount" * [n]',
    "TRUE AND id > 0",
    "(amount > 1) + 1",
    "amount * amount - amount * amount",
    "(amount * amount) / (amount * amount)",
    "amount * amount > 1",
    "amount * 2",
    "2 * amount - 3",
    "amount / 4",
    "250 <= amount",
    "amount < 9007199254740993",
]


def both_ways(expression: str, *, condition: bool = False) -> tuple[Any, Any]:
    fast = BatchExpression(expression, condition=condition)
    slow = BatchExpression(expression, condition=condition, fast=False)
    if condition:
        return fast.keep(BATCH), slow.keep(BATCH)
    return fast.values(BATCH)[0], slow.values(BATCH)[0]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_fast_values_equal_sqlite_values(expression: str) -> None:
    fast, slow = both_ways(expression)
    assert fast == slow
    assert [type(v) for v in fast] == [type(v) for v in slow]


@pytest.mark.parametrize("expression", [e for e in EXPRESSIONS if "||" not in e])
def test_fast_filters_equal_sqlite_filters(expression: str) -> None:
    fast, slow = both_ways(expression, condition=True)
    assert fast == slow


@pytest.mark.parametrize(
    "expression",
    ["amount * 1.2", "amount >= 250 AND category <> 'toys'", "code || category", "id IN (1, 2)"],
)
def test_common_shapes_take_the_fast_path(expression: str) -> None:
    fast = FastExpression(expression)
    columns = {
        name.lower(): list(map(itemgetter(i), BATCH.rows)) for i, name in enumerate(BATCH.names)
    }
    # evaluating over columns answers without SQLite (Unsupported would send it there)
    fast.evaluate(columns, len(BATCH.rows))


@pytest.mark.parametrize(
    "expression",
    ["round(amount, 1)", "code LIKE 'a%'", "id % 2", "CASE WHEN id > 1 THEN 1 END",
     "CAST(id AS TEXT)", "amount BETWEEN 1 AND 3", "99999999999999999999 + id"],
)  # fmt: skip
def test_other_sql_is_left_to_sqlite(expression: str) -> None:
    with pytest.raises(Unsupported):
        FastExpression(expression)
    # and SQLite still answers it
    assert len(BatchExpression(expression, condition=False).values(BATCH)[0]) == len(ROWS)


def test_values_the_fast_path_cannot_match_go_to_sqlite() -> None:
    # a string compared with a number: SQLite orders them by type, Python cannot compare them
    mixed = Batch([Column("v")], [(1,), ("2",), (3.5,), (None,)])
    fast = BatchExpression("v > 2", condition=True)
    slow = BatchExpression("v > 2", condition=True, fast=False)
    assert fast.keep(mixed) == slow.keep(mixed) == [("2",), (3.5,)]
    # an integer result past 64 bits: SQLite makes it a REAL
    big = Batch([Column("v")], [(2**62,), (2**62,)])
    assert BatchExpression("v * 4", condition=False).values(big)[0] == [2.0**64, 2.0**64]


def test_a_filter_moves_ahead_of_a_dynamic_column_it_does_not_read() -> None:
    dynamic = {
        "Name": "DataDynamicColumn",
        "ColumnName": "with_tax",
        "SQLExpression": "amount * 1.2",
        "DataType": "Double",
    }
    independent = {"Name": "DataFilter", "FilterType": 0, "Filter": "amount > 1"}
    dependent = {"Name": "DataFilter", "FilterType": 0, "Filter": "with_tax > 2"}
    moved = compile_pipeline([dynamic, independent])
    kept = compile_pipeline([dynamic, dependent])
    assert [type(step).__name__ for step in moved.steps] == ["DataFilter", "DataDynamicColumn"]
    assert [type(step).__name__ for step in kept.steps] == ["DataDynamicColumn", "DataFilter"]
    # the rows are what running them in the written order gives
    out = moved.apply(BATCH)
    expected = [(*row, row[1] * 1.2) for row in ROWS if row[1] is not None and row[1] > 1]
    assert out.rows == expected
    assert list(starmap(lambda *r: r[-1], kept.apply(BATCH).rows)) == [
        2.5 * 1.2,
        1e300 * 1.2,
        300.0,
    ]


def test_the_output_batch_holds_the_rows_read_until_it_is_dropped() -> None:
    """The input rows are freed with the output (one wave, list order), not in two waves."""
    pipeline = compile_pipeline(
        [
            {"Name": "DataDynamicColumn", "ColumnName": "with_tax",
             "SQLExpression": "amount * 1.2", "DataType": "Double"},
            {"Name": "DataFilter", "FilterType": 0, "Filter": "amount > 1"},
        ]
    )  # fmt: skip
    rows = list(ROWS)
    batch = Batch(BATCH.columns, rows)
    out = pipeline.apply(batch)
    assert rows == ROWS  # the input is not changed
    held = [value for key, value in vars(out).items() if key not in ("columns", "rows", "hashes")]
    assert len(held) == 1 and held[0][0] is rows
    # it is not part of the batch's value: equality and repr see columns and rows only
    assert out == Batch(out.columns, list(out.rows))
    assert "with_tax" in repr(out) and "held" not in repr(out)
    # nothing is held when the rows come out as they went in
    same = compile_pipeline(
        [{"Name": "DataDynamicColumn", "ColumnName": "amount", "SQLExpression": "1",
          "DataType": "Int", "IgnoreIfExists": True}]
    )  # fmt: skip
    assert vars(same.apply(batch)).keys() == {"columns", "rows", "hashes"}


@pytest.mark.parametrize(
    "expression",
    ["v >= 250", "v = 3", "v < 9007199254740993", "v = 9007199254740992", "v * 3 - 1",
     "v / 2", "v + 9007199254740993", "-2 < v", "v <> 0"],
)  # fmt: skip
def test_int_constants_beside_a_float_column_give_sqlites_answers(expression: str) -> None:
    """The fast path turns such constants into floats when that changes no answer."""
    floats = Batch(
        [Column("v", "float")],
        [(250.0,), (249.99,), (3.0,), (-2.0,), (0.0,), (9007199254740992.0,), (1e300,)],
    )
    fast = BatchExpression(expression, condition=False)
    slow = BatchExpression(expression, condition=False, fast=False)
    assert fast._fast(floats) is not None
    assert fast.values(floats)[0] == slow.values(floats)[0]
    assert [type(v) for v in fast.values(floats)[0]] == [type(v) for v in slow.values(floats)[0]]
    fast = BatchExpression(expression, condition=True)
    slow = BatchExpression(expression, condition=True, fast=False)
    assert fast.keep(floats) == slow.keep(floats)


def random_expression(rng: random.Random, depth: int = 0) -> str:
    """An expression from the fast path's grammar, over BATCH's columns."""
    if depth > 2 or rng.random() < 0.3:
        return rng.choice(
            ["id", "amount", "n", "category", "code", "1", "0", "-3", "2.5", "'books'", "NULL",
             "'b'", "250"]
        )  # fmt: skip
    shape = rng.randrange(7)
    a = random_expression(rng, depth + 1)
    b = random_expression(rng, depth + 1)
    if shape == 0:
        return f"({a} {rng.choice(['+', '-', '*', '/'])} {b})"
    if shape == 1:
        return f"({a} {rng.choice(['=', '<>', '<', '<=', '>', '>='])} {b})"
    if shape == 2:
        return f"({a} {rng.choice(['AND', 'OR'])} {b})"
    if shape == 3:
        return f"(NOT {a})"
    if shape == 4:
        return f"({a} IS {rng.choice(['', 'NOT '])}NULL)"
    if shape == 5:
        return f"({a} {rng.choice(['', 'NOT '])}IN (1, 'books', NULL, 2.5))"
    return f"coalesce({a}, {b})"


def test_random_expressions_agree_with_sqlite() -> None:
    rng = random.Random(20261123)
    fast_answers = 0
    for _ in range(400):
        expression = random_expression(rng)
        slow = BatchExpression(expression, condition=False, fast=False)
        try:
            expected = slow.values(BATCH)[0]
        except ExpressionError:
            continue
        fast = BatchExpression(expression, condition=False)
        assert fast.values(BATCH)[0] == expected, expression
        assert [type(v) for v in fast.values(BATCH)[0]] == [type(v) for v in expected], expression
        fast_filter = BatchExpression(expression, condition=True)
        slow_filter = BatchExpression(expression, condition=True, fast=False)
        assert fast_filter.keep(BATCH) == slow_filter.keep(BATCH), expression
        if fast._fast(BATCH) is not None:
            fast_answers += 1
    # most of them are answered without SQLite; the rest fell back and still agreed
    assert fast_answers > 100


def test_random_expressions_agree_with_sqlite_on_awkward_values() -> None:
    # NaN (SQLite stores it as NULL), infinities, text and bytes among numbers, booleans
    awkward = Batch(
        BATCH.columns,
        [
            (1, float("nan"), "x", "a", 3),
            ("2", 1.5, None, "books", True),
            (3.5, float("inf"), "b", b"raw", False),
            (None, -0.0, "", 7, 2**40),
            (True, 2.0, "Z", "toys", -1),
        ],
    )
    rng = random.Random(7)
    for _ in range(400):
        expression = random_expression(rng)
        slow = BatchExpression(expression, condition=False, fast=False)
        try:
            expected = slow.values(awkward)[0]
        except ExpressionError:
            continue
        got = BatchExpression(expression, condition=False).values(awkward)[0]
        assert [repr(v) for v in got] == [repr(v) for v in expected], expression

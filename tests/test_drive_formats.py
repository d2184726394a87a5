"""Arrow batches become the engine's batches with the right logical types and Python values."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa

from jobs.systems.drive.formats import arrow_batch


def test_arrow_values_become_engine_values_of_the_logical_types() -> None:
    # given one column of each kind, with nulls, and a named zone
    table = pa.table(
        {
            "day": pa.array([dt.date(2024, 3, 1), None, dt.date(1950, 1, 2)]),
            "at": pa.array(
                [dt.datetime(2024, 1, 1, 10, 0, 0, 123456), None, dt.datetime(1960, 5, 5)],
                pa.timestamp("us"),
            ),
            "zoned": pa.array(
                [dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC), None, None],
                pa.timestamp("ms", "Europe/Paris"),
            ),
            "price": pa.array([decimal.Decimal("1.50"), None, None], pa.decimal128(6, 2)),
            "tags": pa.array([["a", "b"], None, []]),
            "city": pa.array(["Paris", None, "Paris"]).dictionary_encode(),
        }
    )
    # when
    batch = arrow_batch(table)
    # then
    assert [(c.name, c.type) for c in batch.columns] == [
        ("day", "date"),
        ("at", "datetime"),
        ("zoned", "datetimetz"),
        ("price", "decimal"),
        ("tags", "json"),
        ("city", "string"),
    ]
    assert batch.rows == [
        (
            dt.date(2024, 3, 1),
            dt.datetime(2024, 1, 1, 10, 0, 0, 123456),
            dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC),  # UTC with a fixed offset
            decimal.Decimal("1.50"),
            '["a", "b"]',
            "Paris",
        ),
        (None, None, None, None, None, None),
        (dt.date(1950, 1, 2), dt.datetime(1960, 5, 5), None, None, "[]", "Paris"),
    ]
    assert type(batch.rows[0][2].tzinfo) is dt.timezone

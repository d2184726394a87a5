"""bench/batch_types.py on small data sets: every path lands the source's rows in its target.

The figures in docs/decisions.md come from this benchmark; a path that wrote the wrong rows
(or none) would make them meaningless, so each run's target is compared with its source.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import POSTGRES_HOST, POSTGRES_PORT, require

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "batch_types.py"

pytest.importorskip("pyarrow")

from bench.batch_types import (  # noqa: E402 - after importorskip: no pyarrow, no module
    _row_hashes_polars,
    _row_hashes_pyarrow,
    _typed_schema,
    from_tuples,
    to_tuples,
    to_tuples_polars,
)


def _run(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "3000", "--repeat", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _assert_report(report: dict, paths: set[str]) -> None:
    assert set(report["paths"]) == paths
    for name, path in report["paths"].items():
        assert path["seconds"] > 0, name
        assert path["peak_rss_mb"] > 0, name
        if name == "boundary":
            assert path["round_trip_equal"] is True
        else:
            assert path["target_matches_source"] is True, name
    assert report["paths"]["tuples"]["steps_seconds"].keys() >= {
        "read",
        "hash_and_key",
        "changelog",
        "write",
    }
    assert report["ratios"]["arrow_adbc_over_tuples"] > 0


@pytest.mark.slow
def test_sqlite_paths_copy_every_row():
    # when
    report = _run("--dataset", "sqlite")
    # then
    _assert_report(report["sqlite"], {"reference", "tuples", "arrow_adbc", "arrow_cx", "boundary"})


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_paths_copy_every_row():
    # given
    require("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    # when
    report = _run("--dataset", "postgres")
    # then
    _assert_report(
        report["postgres"],
        {"reference", "tuples", "arrow_adbc", "arrow_cx", "arrow_adbc_append", "boundary"},
    )
    assert report["postgres"]["paths"]["boundary"]["steps_seconds"]["pushdown_read_arrow"] > 0


def test_boundary_round_trip_keeps_types_and_values():
    import pyarrow as pa

    # given
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("price", pa.decimal128(12, 2)),
            ("name", pa.string()),
            ("day", pa.date32()),
            ("at", pa.timestamp("us", tz="UTC")),
        ]
    )
    rows = [
        (
            1,
            decimal.Decimal("1.50"),
            "é",
            dt.date(2024, 1, 2),
            dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        ),
        (2, None, None, None, None),
    ]
    # when
    batch = from_tuples(rows, schema)
    # then
    assert batch.schema == schema
    assert to_tuples(batch) == rows
    assert to_tuples_polars(batch) == rows


def test_row_hashes_change_with_any_value():
    import pyarrow as pa

    # given
    batch = pa.RecordBatch.from_pydict({"id": [1, 2, 3], "name": ["a", "b", "b"]})
    changed = pa.RecordBatch.from_pydict({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    # when
    keys, hashes = _row_hashes_polars(batch)
    _, changed_hashes = _row_hashes_polars(changed)
    plain = _row_hashes_pyarrow(batch)
    # then
    assert keys.to_pylist() == [1, 2, 3]
    assert hashes.type == pa.int64()
    assert hashes.to_pylist()[:2] == changed_hashes.to_pylist()[:2]
    assert hashes.to_pylist()[2] != changed_hashes.to_pylist()[2]
    assert plain != _row_hashes_pyarrow(changed)
    assert plain[:2] == _row_hashes_pyarrow(changed)[:2]


def test_numeric_typmod_becomes_decimal_precision_and_scale():
    import pyarrow as pa

    # given: numeric(12,2) as ADBC's PostgreSQL driver describes it
    opaque = pa.opaque(pa.string(), type_name="numeric", vendor_name="PostgreSQL")
    schema = pa.schema([pa.field("price", opaque, metadata={"POSTGRESQL:typmod": "786438"})])
    # when
    typed = _typed_schema(schema)
    # then
    assert typed.field("price").type == pa.decimal128(12, 2)

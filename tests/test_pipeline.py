"""Pipeline components (DataZen PipelineDef) on real rows, including the vendor's own exports."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from jobs.pipeline import PipelineError, compile_pipeline, validate_pipeline
from jobs.systems.batch import Batch, Column

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "datazen"

# The "Rabbit-Kafka" direct job in specs/datazen-http-api-2.0.txt, exactly as shown there.
RABBIT_KAFKA_PIPELINE = json.loads(
    r"""[
    {"ColumnName": "Engine", "DataType": "String",
     "ExpressionType": "SQL Expression (SQL Only)", "SQLExpression": "'DATAZEN'",
     "MaxLength": 0, "IgnoreIfExists": false, "Name": "DataDynamicColumn", "Disabled": false},
    {"Filter": "\\\"film_id\\\".+\\b\\d+.+", "Column": "0",
     "KeepRowOnConvertionError": false, "KeepRowOnNullOrEmpty": false,
     "RegexIgnoreCase": true, "RegexSingleLine": true, "FilterType": 3,
     "Name": "DataFilter", "Disabled": false}
]"""
)
FILM_MESSAGE = (
    '{"film_id": 1, \n"title": "ACADEMY DINOSAUR", \n"release_year": 2006, \n"rating": "PG"}'
)


def sample_pipeline(file: str, part: str) -> Any:
    return json.loads((SAMPLES / file).read_text())[part]["PipelineDef"]


def films() -> Batch:
    return Batch(
        [Column("film_id", "integer"), Column("title"), Column("rate", "float")],
        [(1, "ACADEMY DINOSAUR", 0.99), (2, "ACE GOLDFINGER", 4.99), (3, None, 2.99)],
    )


def test_rabbit_kafka_pipeline_adds_engine_and_keeps_film_messages() -> None:
    # given messages as the RabbitMQ consumer reads them (content in column 0, `_raw`)
    batch = Batch(
        [Column("_raw"), Column("_headers")],
        [(FILM_MESSAGE, "h1"), ('{"customer_id": 7}', "h2"), ('{"FILM_ID": \n 42 }', "h3")],
    )
    # when
    out = compile_pipeline(RABBIT_KAFKA_PIPELINE).apply(batch)
    # then: the dynamic column is appended, and only film messages pass the regex filter
    assert out.names == ["_raw", "_headers", "Engine"]
    assert out.rows == [(FILM_MESSAGE, "h1", "DATAZEN"), ('{"FILM_ID": \n 42 }', "h3", "DATAZEN")]


def test_regex_filter_drops_null_and_empty_unless_asked_to_keep_them() -> None:
    batch = Batch([Column("_raw")], [(None,), ("",), (FILM_MESSAGE,)])
    strict = compile_pipeline(RABBIT_KAFKA_PIPELINE[1:])
    lenient = compile_pipeline([{**RABBIT_KAFKA_PIPELINE[1], "KeepRowOnNullOrEmpty": True}])
    assert strict.apply(batch).rows == [(FILM_MESSAGE,)]
    assert lenient.apply(batch).rows == [(None,), ("",), (FILM_MESSAGE,)]


def test_regex_options_case_and_single_line() -> None:
    batch = Batch([Column("code")], [("ab\ncd",), ("AB-cd",)])
    base = {"Name": "DataFilter", "FilterType": 3, "Column": "code", "Filter": "^ab.cd$"}
    assert compile_pipeline([base]).apply(batch).rows == []
    assert compile_pipeline([{**base, "RegexSingleLine": True}]).apply(batch).rows == [("ab\ncd",)]
    both = {**base, "RegexSingleLine": True, "RegexIgnoreCase": True}
    assert compile_pipeline([both]).apply(batch).rows == [("ab\ncd",), ("AB-cd",)]


def test_regex_filter_on_undecodable_bytes_follows_keep_row_on_conversion_error() -> None:
    batch = Batch([Column("payload", "binary")], [(b"\xff\xfe",), (b"film_id 12",)])
    base = {"Name": "DataFilter", "FilterType": 3, "Column": "payload", "Filter": r"\d+"}
    assert compile_pipeline([base]).apply(batch).rows == [(b"film_id 12",)]
    keep = {**base, "KeepRowOnConvertionError": True}
    assert compile_pipeline([keep]).apply(batch).rows == batch.rows


def test_sql_filter_keeps_rows_where_condition_holds() -> None:
    pipeline = compile_pipeline(
        [{"Name": "DataFilter", "FilterType": 0, "Filter": "rate > 1 AND title LIKE 'ACE%'"}]
    )
    assert pipeline.apply(films()).rows == [(2, "ACE GOLDFINGER", 4.99)]


def test_value_filters_equals_and_contains() -> None:
    equals = {"Name": "DataFilter", "FilterType": 1, "Column": "1", "Filter": "ace goldfinger"}
    contains = {"Name": "DataFilter", "FilterType": 2, "Column": "title", "Filter": "DINO"}
    assert compile_pipeline([{**equals, "RegexIgnoreCase": True}]).apply(films()).rows == [
        (2, "ACE GOLDFINGER", 4.99)
    ]
    assert compile_pipeline([equals]).apply(films()).rows == []
    assert compile_pipeline([contains]).apply(films()).rows == [(1, "ACADEMY DINOSAUR", 0.99)]


def test_sql_dynamic_column_from_other_columns_with_type_and_max_length() -> None:
    pipeline = compile_pipeline(
        [
            {
                "Name": "DataDynamicColumn",
                "ColumnName": "label",
                "ExpressionType": "SQL Expression (SQL Only)",
                "SQLExpression": "film_id || '-' || coalesce(title, '?')",
                "DataType": "String",
                "MaxLength": 6,
            },
            {
                "Name": "DataDynamicColumn",
                "ColumnName": "cents",
                "ExpressionType": "SQL Expression (SQL Only)",
                "SQLExpression": "CAST(round(rate * 100) AS INTEGER)",
                "DataType": "Int64",
            },
        ]
    )
    out = pipeline.apply(films())
    assert out.columns[3] == Column("label", "string", length=6)
    assert out.columns[4].type == "integer"
    assert [row[3:] for row in out.rows] == [("1-ACAD", 99), ("2-ACE ", 499), ("3-?", 299)]


def test_dynamic_column_replaces_an_existing_column_unless_ignore_if_exists() -> None:
    replace = {
        "Name": "DataDynamicColumn",
        "ColumnName": "TITLE",
        "ExpressionType": "SQL Expression (SQL Only)",
        "SQLExpression": "lower(title)",
    }
    out = compile_pipeline([replace]).apply(films())
    assert out.names == ["film_id", "TITLE", "rate"]
    assert [row[1] for row in out.rows] == ["academy dinosaur", "ace goldfinger", None]
    kept = compile_pipeline([{**replace, "IgnoreIfExists": True}]).apply(films())
    assert kept.rows == films().rows


def test_enzo_utcnow_from_the_sample_writer_pipeline_gives_a_datetime() -> None:
    # given the writer PipelineDef exported as a JSON string
    defs = json.loads((SAMPLES / "form_surveyGetALLModelObjects.json").read_text())
    writer_defs = defs["JobWriter"]["PipelineDef"]
    assert isinstance(writer_defs, str)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    # when
    out = compile_pipeline(writer_defs).apply(films())
    # then
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert out.columns[-1] == Column("targetUpdatedOn", "datetime")
    assert all(before <= row[-1] <= after for row in out.rows)


def test_enzo_dateadd_and_format_date_compose_with_sql() -> None:
    batch = Batch([Column("due", "datetime")], [(dt.datetime(2026, 1, 31, 9, 5, 7),), (None,)])
    pipeline = compile_pipeline(
        [
            {
                "Name": "DataDynamicColumn",
                "ColumnName": "next_due",
                "ExpressionType": "Enzo Expression (Enzo Functions)",
                "SQLExpression": "#formatDate(#dateadd('month', 1, due), 'yyyy-MM-dd HH:mm:ss')",
                "DataType": "String",
            },
            {
                "Name": "DataDynamicColumn",
                "ColumnName": "yesterday",
                "ExpressionType": "Enzo Expression (Enzo Functions)",
                "SQLExpression": "#dateadd('dd', -1, #now())",
                "DataType": "Date",
            },
        ]
    )
    out = pipeline.apply(batch)
    assert [row[1] for row in out.rows] == ["2026-02-28 09:05:07", None]
    assert out.rows[0][2] == dt.date.today() - dt.timedelta(days=1)


def test_apply_schema_from_the_sample_export() -> None:
    # given the reader PipelineDef of form_getAllForms.json and rows as an HTTP reader gives them
    pipeline = compile_pipeline(sample_pipeline("form_getAllForms.json", "JobReader"))
    batch = Batch(
        [Column("id"), Column("name"), Column("accountId"), Column("extra"), Column("_raw")],
        [("17", "Survey", "4", "drop me", "{}"), ("x", "Bad id", None, "drop", "{}")],
    )
    # when
    out = pipeline.apply(batch)
    # then: the schema's columns, in its order, typed; others removed (RemoveIfNotInList)
    assert out.names == [
        "versionId",
        "accountId",
        "creationDate",
        "description",
        "id",
        "name",
        "title",
        "_raw",
    ]
    assert out.columns[0] == Column("versionId", "string", length=50)
    assert out.columns[1].type == "integer"
    assert out.rows[0] == (None, 4, None, None, 17, "Survey", None, "{}")
    # MustSucceed is false: a value that does not convert becomes null
    assert out.rows[1] == (None, None, None, None, None, "Bad id", None, "{}")


def test_apply_schema_default_from_another_column_as_in_the_sample() -> None:
    pipeline = compile_pipeline(
        sample_pipeline("form_surveyGetObjects_Territory.json", "JobReader")[:1]
    )
    batch = Batch(
        [Column("id"), Column("key"), Column("value"), Column("modelId")],
        [("p-1", "Name", "North", "12")],
    )
    out = pipeline.apply(batch)
    assert out.names == ["propertyId", "keyFieldName", "key", "value", "modelId"]
    assert out.rows == [("p-1", None, "Name", "North", 12)]


def test_apply_schema_must_succeed_fails_naming_the_value() -> None:
    pipeline = compile_pipeline(
        [{"Name": "DataApplySchema", "SchemaDefinition": "long id", "MustSucceed": True}]
    )
    with pytest.raises(PipelineError, match=r"row 2, column 'id'"):
        pipeline.apply(Batch([Column("id")], [("1",), ("one",)]))


def test_apply_schema_keeps_other_columns_when_not_removing() -> None:
    pipeline = compile_pipeline(
        [{"Name": "DataApplySchema", "SchemaDefinition": "decimal(10,2) rate\nstring added"}]
    )
    out = pipeline.apply(films())
    assert out.names == ["film_id", "title", "rate", "added"]
    assert [str(row[2]) for row in out.rows] == ["0.99", "4.99", "2.99"]


@pytest.mark.parametrize(
    ("algorithm", "fn"),
    [
        ("MD5", hashlib.md5),
        ("SHA1", hashlib.sha1),
        ("SHA256", hashlib.sha256),
        ("SHA384", hashlib.sha384),
        ("SHA512", hashlib.sha512),
    ],
)
def test_hashing_each_algorithm(algorithm: str, fn: Any) -> None:
    pipeline = compile_pipeline(
        [{"Name": "DataHashing", "Algorithm": algorithm, "Columns": "title, film_id"}]
    )
    out = pipeline.apply(films())
    assert out.rows[0] == (
        fn(b"1").hexdigest(),
        fn(b"ACADEMY DINOSAUR").hexdigest(),
        0.99,
    )
    assert out.rows[2][1] is None


def test_hashing_into_a_target_column() -> None:
    pipeline = compile_pipeline(
        [
            {
                "Name": "Data Hashing",
                "HashType": "sha256",
                "Columns": ["film_id", "title"],
                "TargetColumn": "row_hash",
            }
        ]
    )
    out = pipeline.apply(films())
    assert out.names[-1] == "row_hash"
    assert out.rows[1][-1] == hashlib.sha256(b"2|ACE GOLDFINGER").hexdigest()


def test_masking_keeps_the_chosen_ends() -> None:
    batch = Batch([Column("card"), Column("pin")], [("4111111111111111", "12"), (None, "9")])
    pipeline = compile_pipeline(
        [{"Name": "DataMasking", "Columns": "card,pin", "KeepLast": 4, "MaskChar": "#"}]
    )
    assert pipeline.apply(batch).rows == [("############1111", "##"), (None, "#")]


def test_remove_columns() -> None:
    pipeline = compile_pipeline([{"Name": "RemoveColumns", "Columns": "TITLE,nope"}])
    out = pipeline.apply(films())
    assert out.names == ["film_id", "rate"]
    assert out.rows[0] == (1, 0.99)


def test_disabled_components_do_not_run() -> None:
    defs = [{**RABBIT_KAFKA_PIPELINE[0], "Disabled": True}]
    assert compile_pipeline(defs).apply(films()).rows == films().rows


def test_components_run_in_order() -> None:
    defs = [
        {"Name": "DataFilter", "FilterType": 0, "Filter": "film_id >= 2"},
        {
            "Name": "DataDynamicColumn",
            "ColumnName": "n",
            "SQLExpression": "film_id * 10",
            "DataType": "long",
        },
        {"Name": "DataFilter", "FilterType": 0, "Filter": "n = 30"},
    ]
    assert compile_pipeline(defs).apply(films()).rows == [(3, None, 2.99, 30)]


@pytest.mark.parametrize(
    ("file", "part"),
    [
        ("UPSERT_DataModelObject_Territory.json", "JobWriter"),
        ("UPSERT_DataModelObjects.json", "JobWriter"),
        ("form_surveyGetALLModelObjects.json", "JobReader"),
        ("form_surveyGetObjects_Territory.json", "JobReader"),
    ],
)
def test_run_sql_from_exports_is_accepted_on_save_and_compiles_for_a_run(
    file: str, part: str
) -> None:
    # DataRunSQL runs (tests/test_pipeline_runsql.py); the exports' disabled DataSink is skipped.
    defs = sample_pipeline(file, part)
    validate_pipeline(defs)
    assert "DataRunSQL" in [type(step).__name__ for step in compile_pipeline(defs).steps]


def test_an_enabled_sink_fails_the_run_naming_it() -> None:
    defs = [{"Name": "DataSink", "TableName": "test.sink", "Disabled": False}]
    validate_pipeline(defs)
    with pytest.raises(PipelineError, match=r"DataSink.*not supported"):
        compile_pipeline(defs)


def test_disabled_sink_does_not_stop_a_run() -> None:
    defs = [{"Name": "DataSink", "TableName": "test.sink", "Disabled": True}]
    assert compile_pipeline(defs).apply(films()).rows == films().rows


@pytest.mark.parametrize("defs", [None, "", "[]", [], "null"])
def test_empty_pipeline_passes_batches_through(defs: Any) -> None:
    pipeline = compile_pipeline(defs)
    assert not pipeline
    assert pipeline.apply(films()).rows == films().rows


@pytest.mark.parametrize(
    ("defs", "message"),
    [
        ([{"Name": "DataTeleport"}], "unknown component type 'DataTeleport'"),
        ('[{"Name": "DataFilter"', "not valid JSON"),
        ([{"Disabled": False}], "has no Name"),
        (
            [{"Name": "DataFilter", "FilterType": 3, "Column": "0", "Filter": "(["}],
            "regular expression",
        ),
        ([{"Name": "DataFilter", "FilterType": 9, "Filter": "x"}], "unknown FilterType 9"),
        (
            [{"Name": "DataDynamicColumn", "ColumnName": "c", "ExpressionType": "Enzo",
              "SQLExpression": "#teleport()"}],
            "unknown Enzo function #teleport()",
        ),
        ([{"Name": "DataApplySchema", "SchemaDefinition": "wibble id"}], "unknown data type"),
        ([{"Name": "DataFilter", "FilterType": 0, "Filter": "qty >"}], "syntax error"),
        (
            [{"Name": "DataDynamicColumn", "ColumnName": "c",
              "SQLExpression": "(SELECT name FROM sqlite_master)"}],
            "not allowed",
        ),
        (
            [{"Name": "DataDynamicColumn", "ColumnName": "c",
              "SQLExpression": "load_extension('x')"}],
            "not allowed",
        ),
        ([{"Name": "DataHashing", "Algorithm": "CRC32", "Columns": "a"}], "CRC32"),
    ],
)  # fmt: skip
def test_validate_refuses_what_cannot_run_naming_it(defs: Any, message: str) -> None:
    with pytest.raises(PipelineError) as caught:
        validate_pipeline(defs)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_sql_expression_error_names_the_step() -> None:
    pipeline = compile_pipeline(
        [{"Name": "DataDynamicColumn", "ColumnName": "x", "SQLExpression": "missing_col + 1"}]
    )
    with pytest.raises(PipelineError, match=r"step 1 \(DataDynamicColumn\)"):
        pipeline.apply(films())


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy-MM-ddTHH:mm:ss.fff", "2026-01-31T09:05:07.123"),
        ("dd/MM/yy h:mm tt", "31/01/26 9:05 AM"),
        ("MMMM d, yyyy", "January 31, 2026"),
        ("ddd HH'h'mm", "Sat 09h05"),
        ("yyyyMMddHHmmssfffffff", "202601310905071234560"),
        ("HH:mm zzz", "09:05 +00:00"),
    ],
)
def test_enzo_format_date_follows_dotnet_format_strings(pattern: str, expected: str) -> None:
    batch = Batch([Column("at", "datetime")], [(dt.datetime(2026, 1, 31, 9, 5, 7, 123456),)])
    pipeline = compile_pipeline(
        [
            {
                "Name": "DataDynamicColumn",
                "ColumnName": "text",
                "ExpressionType": "Enzo Expression (Enzo Functions)",
                "SQLExpression": f"#formatDate(at, '{pattern.replace(chr(39), chr(39) * 2)}')",
            }
        ]
    )
    assert pipeline.apply(batch).rows[0][1] == expected


@pytest.mark.parametrize(
    ("data_type", "logical", "value"),
    [
        ("String", "string", "1"),
        ("Int32", "integer", 1),
        ("long", "integer", 1),
        ("System.Int64", "integer", 1),
        ("Double", "float", 1.0),
        ("Decimal", "decimal", decimal.Decimal(1)),
        ("Boolean", "boolean", True),
        ("Guid", "string", "1"),
    ],
)
def test_dynamic_column_data_types(data_type: str, logical: str, value: Any) -> None:
    pipeline = compile_pipeline(
        [{"Name": "DataDynamicColumn", "ColumnName": "v", "SQLExpression": "1",
          "DataType": data_type}]
    )  # fmt: skip
    out = pipeline.apply(films())
    assert out.columns[-1].type == logical
    assert out.rows[0][-1] == value
    assert type(out.rows[0][-1]) is type(value)

"""Drive readers: files of each format in a local folder → a SQLite table, through direct jobs."""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import json
import lzma
import os
from pathlib import Path

import pytest
import zstandard
from rest_framework.test import APIClient

from jobs.models import ExecutionStatus
from jobs.systems.drive import size_text
from tests.drivefiles import FILMS, drive_connection, write_csv, write_format, write_xlsx
from tests.syncdb import direct_job, messages, rows, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def target_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.sqlite3'}"


def drive_job(folder: Path, target_url: str, keys: str = "id", **drive: object):
    key = drive_connection({"service": "local", "path": str(folder)})
    return direct_job(
        key,
        target_url,
        sql="",
        target="films",
        keys=keys,
        json_data={"DriveSourceSettings": drive},
    )


def films_in(url: str) -> list[tuple]:
    return [(r[0], r[1], int(r[2]), float(r[3])) for r in rows(url, "films")]


@pytest.mark.parametrize(
    ("fmt", "extra"),
    [
        ("csv", {}),
        ("json", {}),
        ("jsonl", {}),
        ("parquet", {}),
        ("xml", {"TxDocumentRootPath": "//films/film"}),
        ("xlsx", {}),
    ],
)
def test_each_format_is_read_into_the_target(
    drive_root: Path, target_url: str, fmt: str, extra: dict[str, str]
) -> None:
    # given a folder holding the films as one file of the format
    write_format(drive_root / "in", fmt, FILMS)
    job = drive_job(drive_root / "in", target_url, DriveFileFormat=fmt.upper(), **extra)
    # when
    execution = run(job)
    # then every row arrives, value for value
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert films_in(target_url) == FILMS
    assert execution.record_count == len(FILMS)


def test_csv_options_delimiter_encoding_and_no_header_with_a_schema_file(
    drive_root: Path, target_url: str
) -> None:
    # given a Latin-1, semicolon-separated file without header, and a schema file naming it
    folder = drive_root / "latin"
    folder.mkdir()
    (folder / "films.txt").write_bytes(
        "1;Crème brûlée;2006;0.99\n2;Året;2007;4.5\n".encode("latin-1")
    )
    (folder / "films.schema.json").write_text(
        json.dumps(
            [
                {"name": "id", "type": "integer"},
                {"name": "title", "type": "string"},
                {"name": "year", "type": "integer"},
                {"name": "rate", "type": "decimal", "precision": 6, "scale": 2},
            ]
        )
    )
    job = drive_job(
        folder,
        target_url,
        DriveFileFormat="CSV",
        DriveFilePattern="*.txt",
        DriveCsvDelimiter=";",
        DriveCsvHeader=False,
        DriveFileEncoding="latin-1",
        DriveSchemaFile="films.schema.json",
    )
    # when
    execution = run(job)
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target_url, "films") == [
        (1, "Crème brûlée", 2006, "0.99"),  # decimals are kept exact (text) in SQLite
        (2, "Året", 2007, "4.50"),
    ]


def test_subfolders_pattern_folder_column_and_selected_columns(
    drive_root: Path, target_url: str
) -> None:
    # given files in a folder and its subfolders, and a file the pattern leaves out
    folder = drive_root / "tree"
    write_csv(folder / "top.csv", FILMS[:1])
    write_csv(folder / "2007" / "a.csv", FILMS[2:4])
    write_csv(folder / "2008" / "deep" / "b.csv", FILMS[4:])
    (folder / "notes.txt").write_text("not a film")
    job = drive_job(
        folder,
        target_url,
        DriveFilePattern="*.csv",
        DriveIncludeSubfolders=True,
        DriveAddFolderColumn=True,
        DriveFolderColumnName="folder",
        DriveFileSelectedColumns="id, title",
    )
    # when
    execution = run(job)
    # then only the selected columns, each row with the folder it came from
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target_url, "films") == [
        (1, "Academy Dinosaur", ""),
        (3, "Adaptation Holes", "2007"),
        (4, "Affair Prejudice", "2007"),
        (5, "African Egg", "2008/deep"),
    ]


def test_without_subfolders_only_the_top_folder_is_read(drive_root: Path, target_url: str) -> None:
    folder = drive_root / "flat"
    write_csv(folder / "top.csv", FILMS[:2])
    write_csv(folder / "sub" / "more.csv", FILMS[2:])
    execution = run(drive_job(folder, target_url))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert [r[0] for r in rows(target_url, "films")] == [1, 2]


def _keep_stat(path: Path, text: str) -> None:
    """Replace a file's content keeping its size and mtime: only a reader that skips it
    (as DriveUpdatedFilesOnly promises) still succeeds."""
    stat = path.stat()
    assert len(text.encode()) == stat.st_size
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_updated_files_only_across_three_runs(drive_root: Path, target_url: str) -> None:
    # given two files, read once
    folder = drive_root / "updated"
    write_csv(folder / "a.csv", FILMS[:2])
    write_csv(folder / "b.csv", FILMS[2:])
    job = drive_job(folder, target_url, DriveUpdatedFilesOnly=True)
    first = run(job)
    assert first.status == ExecutionStatus.SUCCEEDED, first.error_message
    assert films_in(target_url) == FILMS
    # when b.csv changes (a row updated, a row deleted) and a.csv is left as it was
    changed = [(3, "Adaptation Holes II", 2007, 3.99), FILMS[4]]  # film 4 removed
    write_csv(folder / "b.csv", changed)
    a_text = (folder / "a.csv").read_text()
    _keep_stat(folder / "a.csv", "X" * len(a_text.encode()))  # unreadable if it were read
    second = run(job)
    # then the changed file is read again, the unchanged one skipped, the delete propagated
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert films_in(target_url) == [*FILMS[:2], *changed]
    assert second.record_count == 1 and second.delete_count == 1
    # and a third run with nothing changed reads nothing and changes nothing
    third = run(job)
    assert third.status == ExecutionStatus.SUCCEEDED, third.error_message
    assert third.record_count == 0 and third.delete_count == 0
    assert "No changes found: no change log written." in messages(third)
    assert films_in(target_url) == [*FILMS[:2], *changed]
    # and each run's log says which files it read, with their sizes, and which it skipped
    a_size, b_size = (folder / "a.csv").stat().st_size, (folder / "b.csv").stat().st_size
    assert f"Read a.csv ({a_size} bytes, 2 rows)." in messages(first)
    assert f"Read b.csv ({b_size} bytes, 2 rows)." in messages(second)
    skipped_a = (
        f"Skipped a.csv ({a_size} bytes): unchanged since the last run; "
        "its rows replayed from that read."
    )
    assert skipped_a in messages(second)
    assert not any(m.startswith("Read a.csv") for m in messages(second))
    assert any(
        m.endswith(f": 0 read (0 bytes), 2 skipped as unchanged ({size_text(a_size + b_size)}).")
        for m in messages(third)
    )


def test_the_log_names_every_file_read_and_counts_them(drive_root: Path, target_url: str) -> None:
    # given two files, one in a subfolder
    folder = drive_root / "logged"
    write_csv(folder / "a.csv", FILMS[:2])
    write_csv(folder / "2024" / "b.csv", FILMS[2:])
    # when
    execution = run(drive_job(folder, target_url, DriveIncludeSubfolders=True))
    # then
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    logged = messages(execution)
    sizes = [(folder / p).stat().st_size for p in ("2024/b.csv", "a.csv")]
    assert f"Read 2024/b.csv ({sizes[0]} bytes, 3 rows)." in logged
    assert f"Read a.csv ({sizes[1]} bytes, 2 rows)." in logged
    assert f"Files in folder {folder}: 2 read ({size_text(sum(sizes))})." in logged


def test_a_pattern_matching_nothing_is_said_in_the_log(drive_root: Path, target_url: str) -> None:
    folder = drive_root / "nomatch"
    write_csv(folder / "a.csv", FILMS[:1])
    execution = run(drive_job(folder, target_url, DriveFilePattern="*.parquet"))
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert f"No file in folder {folder} matches *.parquet." in messages(execution)


def test_updated_files_only_remembers_nothing_from_a_failed_run(
    drive_root: Path, target_url: str
) -> None:
    # given a first run that fails on a malformed second file
    folder = drive_root / "failing"
    write_csv(folder / "a.csv", FILMS[:2])
    (folder / "b.csv").write_text("id,title,year,rate\n3,x,notayear,1\n")
    job = drive_job(folder, target_url, DriveUpdatedFilesOnly=True)
    assert run(job).status == ExecutionStatus.FAILED
    # when the file is fixed
    write_csv(folder / "b.csv", FILMS[2:])
    second = run(job)
    # then both files are read: a.csv was not remembered by the failed run
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert films_in(target_url) == FILMS


def test_appending_updated_files_only_sends_only_new_files(
    drive_root: Path, target_url: str
) -> None:
    folder = drive_root / "append"
    write_csv(folder / "day1.csv", FILMS[:2])
    job = drive_job(folder, target_url, keys="", DriveUpdatedFilesOnly=True)
    assert run(job).status == ExecutionStatus.SUCCEEDED
    write_csv(folder / "day2.csv", FILMS[2:])
    second = run(job)
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert second.record_count == 3  # day1.csv is not appended twice
    assert sorted(r[0] for r in rows(target_url, "films")) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "short.csv",
            "id,title,year,rate\n1,a,2006,1\n2,b,2007\n",
            "short.csv: line 3, column 4: expected 4 columns, got 3.",
        ),
        (
            "bad.jsonl",
            '{"id": 1, "title": "a"}\n{"id": 2, "title": "b}\n',
            "bad.jsonl: line 2, column 20: Unterminated string starting here.",
        ),
        (
            "bad.json",
            '[\n  {"id": 1},\n  {"id": 2,, "title": "b"}\n]',
            "bad.json: line 3, column 12: Expecting property name",
        ),
        (
            "bad.xml",
            "<films>\n<film><id>1</id></film>\n<film><id>2</film>\n</films>",
            "bad.xml: line 3, column",
        ),
    ],
)
def test_a_malformed_file_fails_naming_file_line_and_column_and_applies_nothing(
    drive_root: Path, target_url: str, name: str, content: str, expected: str
) -> None:
    folder = drive_root / "malformed"
    folder.mkdir()
    (folder / name).write_text(content)
    fmt = name.rsplit(".", 1)[1]
    job = drive_job(folder, target_url, DriveFileFormat=fmt, DriveFilePattern=name)
    execution = run(job)
    assert execution.status == ExecutionStatus.FAILED
    assert expected in execution.error_message
    with pytest.raises(Exception, match="no such table"):
        rows(target_url, "films")


def test_a_value_that_does_not_fit_the_column_names_file_line_and_column(
    drive_root: Path, target_url: str
) -> None:
    # given a first file that settles `year` as a whole number and a second that breaks it
    folder = drive_root / "typed"
    write_csv(folder / "a.csv", FILMS[:2])
    (folder / "b.csv").write_text("id,title,year,rate\n3,c,2007,1\n4,d,20x7,1\n")
    # when
    execution = run(drive_job(folder, target_url))
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert "b.csv: line 3, column 3 (year): '20x7' is not a valid int64." in (
        execution.error_message
    )
    # the direct writer had created the table from a.csv's columns, but no row was committed
    assert rows(target_url, "films") == []


def test_no_file_at_all_deletes_what_was_read_before(drive_root: Path, target_url: str) -> None:
    folder = drive_root / "emptied"
    write_csv(folder / "a.csv", FILMS[:2])
    job = drive_job(folder, target_url)
    assert run(job).status == ExecutionStatus.SUCCEEDED
    (folder / "a.csv").unlink()
    second = run(job)
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert second.delete_count == 2
    assert rows(target_url, "films") == []


def test_a_later_file_with_an_unknown_column_is_refused_by_name(
    drive_root: Path, target_url: str
) -> None:
    folder = drive_root / "drift"
    write_csv(folder / "a.csv", FILMS[:1])
    write_csv(folder / "b.csv", [(2, "x")], columns=["id", "surprise"])
    execution = run(drive_job(folder, target_url))
    assert execution.status == ExecutionStatus.FAILED
    assert "b.csv has column 'surprise'" in execution.error_message


def test_flat_vendor_settings_in_json_data_are_read_too(drive_root: Path, target_url: str) -> None:
    # the vendor's exports carry the Drive* fields flat in JsonData
    write_format(drive_root / "flat-settings", "jsonl", FILMS)
    key = drive_connection({"service": "local", "path": str(drive_root / "flat-settings")})
    job = direct_job(
        key,
        target_url,
        sql="",
        target="films",
        json_data={"DriveFileFormat": "JSONL", "DriveFilePattern": "*.jsonl"},
    )
    execution = run(job)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert films_in(target_url) == FILMS


def test_a_bad_drive_setting_is_refused_when_the_job_is_saved(datazen: APIClient) -> None:
    body = {
        "JobReader": {
            "JobKey": "files",
            "ConnectionString": "films-in",
            "JsonData": {"DriveSourceSettings": {"DriveFileFormat": "DOC", "DriveCsvQuote": "''"}},
        }
    }
    response = datazen.post("/job", body, format="json")
    assert response.status_code == 400
    assert "DriveSourceSettings.DriveFileFormat 'doc' is not supported" in response.content.decode()


def test_a_timestamp_column_sends_only_rows_at_or_past_the_pointer(
    drive_root: Path, target_url: str
) -> None:
    # given files with an update time, read once
    folder = drive_root / "stamped"
    columns = ["id", "title", "updated"]
    write_csv(folder / "a.csv", [(1, "a", "2024-01-01"), (2, "b", "2024-01-02")], columns)
    key = drive_connection({"service": "local", "path": str(folder)})
    job = direct_job(key, target_url, sql="", target="films", timestamp_col="updated")
    first = run(job)
    assert first.status == ExecutionStatus.SUCCEEDED, first.error_message
    # when a row is changed with a later time and another added
    write_csv(
        folder / "a.csv",
        [(1, "a", "2024-01-01"), (2, "b2", "2024-01-03"), (3, "c", "2024-01-04")],
        columns,
    )
    second = run(job)
    # then only the rows past the pointer are sent
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert second.record_count == 2
    assert [(r[0], r[1]) for r in rows(target_url, "films")] == [(1, "a"), (2, "b2"), (3, "c")]


def test_excel_sheet_by_name_with_dates_and_empty_rows(drive_root: Path, target_url: str) -> None:
    # given a workbook whose second worksheet holds the rows, with dates and a blank row below
    folder = drive_root / "excel"
    write_xlsx(
        folder / "films.xlsx",
        {
            "notes": [["read me first"]],
            "Films": [
                ["id", "title", "released"],
                [1, "Academy Dinosaur", dt.datetime(2006, 2, 15, 10, 30)],
                [2, "Ace Goldfinger", dt.datetime(2006, 5, 26, 0, 0)],
                [None, None, None],
            ],
        },
    )
    job = drive_job(folder, target_url, DriveFileFormat="Excel", DriveExcelSheet="Films")
    # when
    execution = run(job)
    # then the named sheet's rows arrive, the datetimes typed as such, the blank row skipped
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert rows(target_url, "films") == [
        (1, "Academy Dinosaur", "2006-02-15 10:30:00"),
        (2, "Ace Goldfinger", "2006-05-26 00:00:00"),
    ]


def test_excel_errors_name_the_file_the_sheet_and_the_row(
    drive_root: Path, target_url: str
) -> None:
    folder = drive_root / "excel-bad"
    write_xlsx(folder / "a.xlsx", {"films": [["id", "title"], [1, "a"], ["two", "b"]]})
    (folder / "schema.json").write_text(json.dumps({"id": "integer", "title": "string"}))
    (folder / "b.xlsx").write_text("id,title\n1,not a workbook\n")
    # a value that does not fit the schema's type: the row is named
    typed = run(
        drive_job(folder, target_url, DriveFilePattern="a.xlsx", DriveSchemaFile="schema.json")
    )
    assert typed.status == ExecutionStatus.FAILED
    assert "a.xlsx: row 3: column 'id': 'two' is not a valid integer." in typed.error_message
    # a file that is no workbook
    broken = run(drive_job(folder, target_url, DriveFilePattern="b.xlsx"))
    assert broken.status == ExecutionStatus.FAILED
    assert "b.xlsx: not a readable Excel workbook (.xlsx)" in broken.error_message
    # a sheet that is not there
    missing = run(drive_job(folder, target_url, DriveFilePattern="a.xlsx", DriveExcelSheet="X"))
    assert missing.status == ExecutionStatus.FAILED
    assert "a.xlsx has no worksheet 'X' (worksheets: films)." in missing.error_message


def test_legacy_excel_files_are_refused_when_the_job_is_saved(datazen: APIClient) -> None:
    # given definitions reading .xls files (Excel 97-2003), which openpyxl cannot read
    for settings in ({"DriveFilePattern": "*.xls"}, {"DriveFileFormat": "XLS"}):
        body = {
            "JobReader": {
                "JobKey": "old-excel",
                "ConnectionString": "films-in",
                "JsonData": {"DriveSourceSettings": settings},
            }
        }
        # when
        response = datazen.post("/job", body, format="json")
        # then
        assert response.status_code == 400
        assert "save the files as .xlsx" in response.content.decode()


def _compress(path: Path, codec: str) -> Path:
    """`path` compressed next to it as `<name>.<codec>`; the plain file removed."""
    data = path.read_bytes()
    packed = path.with_name(f"{path.name}.{codec}")
    if codec == "gz":
        packed.write_bytes(gzip.compress(data))
    elif codec == "bz2":
        packed.write_bytes(bz2.compress(data))
    elif codec == "xz":
        packed.write_bytes(lzma.compress(data))
    else:  # zst, zstd: two frames back to back, as a concatenation of compressed parts is
        half = len(data) // 2
        compressor = zstandard.ZstdCompressor()
        packed.write_bytes(compressor.compress(data[:half]) + compressor.compress(data[half:]))
    path.unlink()
    return packed


@pytest.mark.parametrize(
    ("fmt", "codec", "extra"),
    [
        ("csv", "gz", {}),
        ("csv", "zst", {}),
        ("jsonl", "bz2", {}),
        ("json", "xz", {}),
        ("xml", "zstd", {"TxDocumentRootPath": "//films/film"}),
    ],
)
def test_compressed_files_are_read_by_their_extension(
    drive_root: Path, target_url: str, fmt: str, codec: str, extra: dict[str, str]
) -> None:
    # given the films as a compressed file (`films.csv.gz`, …), the format named by the pattern
    folder = drive_root / "packed"
    packed = _compress(write_format(folder, fmt, FILMS), codec)
    job = drive_job(folder, target_url, DriveFilePattern=f"*.{fmt}.{codec}", **extra)
    # when
    execution = run(job)
    # then it is decompressed while read, value for value
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    assert films_in(target_url) == FILMS
    assert f"Read {packed.name} ({packed.stat().st_size} bytes, 5 rows)." in messages(execution)


def test_a_damaged_compressed_file_fails_by_name_and_a_bad_csv_line_is_located_inside(
    drive_root: Path, target_url: str
) -> None:
    # given a truncated gzip file
    folder = drive_root / "damaged"
    packed = _compress(write_format(folder, "csv", FILMS), "gz")
    packed.write_bytes(packed.read_bytes()[:-12])
    # when / then the run fails naming the file and its codec, and applies nothing
    execution = run(drive_job(folder, target_url, DriveFilePattern="*.csv.gz"))
    assert execution.status == ExecutionStatus.FAILED
    assert execution.error_message.startswith("films.csv.gz: not a readable gzip file")
    # and a value that does not fit its column, inside a sound compressed file, is located
    packed.unlink()
    write_csv(folder / "a.csv", FILMS[:2])
    (folder / "b.csv").write_text("id,title,year,rate\n3,c,2007,1\n4,d,20x7,1\n")
    _compress(folder / "a.csv", "xz")
    _compress(folder / "b.csv", "xz")
    execution = run(drive_job(folder, target_url, DriveFilePattern="*.csv.xz"))
    assert execution.status == ExecutionStatus.FAILED
    assert "b.csv.xz: line 3, column 3 (year): '20x7' is not a valid int64." in (
        execution.error_message
    )


def test_compressed_parquet_is_refused_by_name(drive_root: Path, target_url: str) -> None:
    folder = drive_root / "pq"
    _compress(write_format(folder, "parquet", FILMS), "gz")
    execution = run(drive_job(folder, target_url, DriveFilePattern="*.parquet.gz"))
    assert execution.status == ExecutionStatus.FAILED
    assert "films.parquet.gz: Parquet files are compressed inside" in execution.error_message

"""The change-log file format: round trip, streaming, integrity, safety, paths."""

from __future__ import annotations

import datetime as dt
import pickle
from decimal import Decimal
from pathlib import Path

import pytest
import zstandard

from jobs.sync.changelog import (
    ChangeLogError,
    ChangeLogReader,
    ChangeLogWriter,
    Header,
    PathOutsideDataDir,
    decode_frame,
    encode_frame,
    job_folder,
    log_file_name,
    pending_logs,
)
from jobs.systems.batch import Column

COLUMNS = [
    Column("id", "integer", nullable=False),
    Column("price", "decimal", precision=12, scale=4),
    Column("at", "datetimetz"),
    Column("name", "string", length=40),
    Column("blob", "binary"),
]


def write(path: Path, frames: list[tuple[str, list[tuple]]]) -> None:
    writer = ChangeLogWriter(path, Header("films", "1636649966604", COLUMNS, ["id"]))
    for op, rows in frames:
        (writer.write_upserts if op == "U" else writer.write_deletes)(rows)
    writer.commit()


def test_frames_round_trip_with_their_types(tmp_path: Path) -> None:
    # given
    upserts = [
        (1, Decimal("1.2500"), dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "Zoë", b"\x00\xff"),
        (2, None, None, None, None),
    ]
    path = tmp_path / "films_1636649966604.eds"
    write(path, [("U", upserts), ("D", [(7,), (8,)])])
    # when
    with ChangeLogReader(path) as log:
        frames = [(frame.op, frame.rows) for frame in log.frames()]
        header = log.header
    # then
    assert header.columns == COLUMNS and header.keys == ["id"]
    assert header.execution_id == "1636649966604"
    assert frames == [(b"U", upserts), (b"D", [(7,), (8,)])]
    assert repr(frames[0][1][0][1]) == "Decimal('1.2500')"
    assert (log.upserts, log.deletes) == (2, 2)


@pytest.mark.parametrize("distinct", [3, 1000], ids=["repeated", "mostly unique"])
def test_a_frame_encodes_each_distinct_value_as_text_once(distinct: int) -> None:
    # given 1,000 rows whose date column repeats `distinct` days, with NULLs among them
    days = [
        None if n % 7 == 0 else dt.date(2024, 1, 1) + dt.timedelta(n % distinct)
        for n in range(1000)
    ]
    # (equal decimals keep their own texts)
    rows = [(n, day, Decimal(n % 2).scaleb(-(n % 3))) for n, day in enumerate(days)]
    types = ["integer", "date", "decimal"]
    # when
    encoded, texts = encode_frame(rows, types)
    # then each value is its ISO text (NULL stays NULL), decoded back exactly
    assert encoded == (1, 2)
    assert [row[1] for row in texts] == [None if d is None else d.isoformat() for d in days]
    assert [row[2] for row in texts] == [str(row[2]) for row in rows]
    assert decode_frame((encoded, texts), types) == rows
    # and a repeated value's text is built once and shared by its rows
    shared = {id(row[1]) for row in texts if row[1] is not None}
    assert len(shared) == len({d for d in days if d is not None})


def test_only_a_committed_log_gets_its_name(tmp_path: Path) -> None:
    path = tmp_path / "films_1.eds"
    writer = ChangeLogWriter(path, Header("films", "1", COLUMNS, ["id"]))
    writer.write_upserts([(1, None, None, "a", None)])
    assert not path.exists()
    writer.abort()
    assert not path.exists() and not list(tmp_path.iterdir())


def test_a_truncated_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "films_1.eds"
    write(path, [("U", [(i, None, None, "x" * 50, None) for i in range(1000)])])
    path.write_bytes(path.read_bytes()[:-40])
    with ChangeLogReader(path) as log, pytest.raises(ChangeLogError, match="truncated"):
        list(log.frames())


def test_a_frame_that_names_code_is_refused(tmp_path: Path) -> None:
    # given: a crafted frame whose pickle would call os.system
    path = tmp_path / "films_1.eds"
    write(path, [])
    evil = zstandard.ZstdCompressor().compress(pickle.dumps([(__import__("os").getcwd,)]))
    data = path.read_bytes()
    trailer_at = len(data) - (9 + 16)
    import struct

    frame = struct.pack(">cII", b"U", 1, len(evil)) + evil
    path.write_bytes(data[:trailer_at] + frame + data[trailer_at:])
    # then
    with ChangeLogReader(path) as log, pytest.raises(ChangeLogError, match="not a value type"):
        list(log.frames())


def test_a_log_of_format_1_written_before_zstandard_is_still_read(tmp_path: Path) -> None:
    # given: a change log written by an earlier version (zlib frames, format 1)
    path = tmp_path / "films_1.eds"
    rows = [(1, Decimal("1.2500"), None, "é", b"\x00"), (2, None, None, "b", None)]
    writer = ChangeLogWriter(path, Header("films", "1", COLUMNS, ["id"], compression="zlib"))
    writer.write_upserts(rows)
    writer.commit()
    # when
    with ChangeLogReader(path) as log:
        frames = list(log.frames())
        header = log.header
    # then
    assert b'"format": 1' in path.read_bytes()[:400]
    assert header.compression == "zlib"
    assert [frame.rows for frame in frames] == [rows]


def test_a_frame_that_does_not_decompress_is_refused(tmp_path: Path) -> None:
    import struct

    path = tmp_path / "films_1.eds"
    write(path, [])
    data = path.read_bytes()
    trailer_at = len(data) - (9 + 16)
    frame = struct.pack(">cII", b"U", 1, 5) + b"\x28\xb5\x2f\xfd\x00"
    path.write_bytes(data[:trailer_at] + frame + data[trailer_at:])
    with ChangeLogReader(path) as log, pytest.raises(ChangeLogError, match="damaged frame"):
        list(log.frames())


def test_pending_logs_are_those_after_the_last_applied_in_order(tmp_path: Path) -> None:
    for execution_id in ("1636649966700", "1636649966604", "1636649966650"):
        write(tmp_path / log_file_name("films", execution_id), [])
    (tmp_path / "other_1636649966999.eds").write_bytes(b"")
    (tmp_path / "films_1636649966999.eds.part").write_bytes(b"")
    found = pending_logs(tmp_path, "films", "1636649966604")
    assert [execution_id for execution_id, _ in found] == ["1636649966650", "1636649966700"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("C:\\tmp\\datasync_reader", "drive_c/tmp/datasync_reader"),
        ("C:\\Tmp\\datasync_reader\\", "drive_c/Tmp/datasync_reader"),
        ("/srv/logs", "srv/logs"),
        ("logs/films", "logs/films"),
        ("", "changelogs"),
    ],
)
def test_job_paths_map_under_the_data_directory(tmp_path: Path, given: str, expected: str) -> None:
    assert job_folder(tmp_path, given) == (tmp_path / expected).resolve()


@pytest.mark.parametrize("escape", ["..\\..\\etc", "C:\\tmp\\..\\..\\x", "/a/../../b"])
def test_paths_escaping_the_data_directory_are_refused(tmp_path: Path, escape: str) -> None:
    with pytest.raises(PathOutsideDataDir):
        job_folder(tmp_path, escape)

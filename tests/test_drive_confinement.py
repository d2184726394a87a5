"""Drive connections stay under GATEWAY_DRIVE_ROOT and never reach the gateway's own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import LazySettings
from sqlalchemy.exc import OperationalError

from jobs.models import ExecutionStatus
from jobs.sync.changelog import PathOutsideDataDir, job_folder
from jobs.sync.spec import WriterSpec
from jobs.systems import registry
from jobs.systems.drive.location import PathRefused, open_location
from tests.drivefiles import FILMS, drive_connection, write_csv
from tests.syncdb import direct_job, rows, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    write_csv(folder / "secret.csv", [(1, "secret", 2000, 1.0)])
    return folder


def committed_rows(url: str, table: str) -> list[tuple]:
    """The target's rows; none when the writer never got as far as creating the table."""
    try:
        return rows(url, table)
    except OperationalError:
        return []


def _local(path: str) -> str:
    return json.dumps({"service": "local", "path": path})


def test_a_relative_path_is_under_the_root(drive_root: Path) -> None:
    write_csv(drive_root / "films" / "a.csv", FILMS)
    location = open_location(_local("films"))
    assert [f.path for f in location.list_files(subfolders=False, patterns=["*"])] == ["a.csv"]


@pytest.mark.parametrize("path", ["../outside", "films/../../outside", "films/..", "C:/x"])
def test_dot_dot_and_drive_letters_are_refused(drive_root: Path, outside: Path, path: str) -> None:
    (drive_root / "films").mkdir()
    with pytest.raises(PathRefused):
        open_location(_local(path))


def test_an_absolute_path_outside_the_root_is_refused(drive_root: Path, outside: Path) -> None:
    with pytest.raises(PathRefused, match="outside the drive root"):
        open_location(_local(str(outside)))
    with pytest.raises(PathRefused, match="outside the drive root"):
        open_location(_local("/etc"))


def test_a_symlinked_folder_leading_outside_is_refused(drive_root: Path, outside: Path) -> None:
    (drive_root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathRefused, match="outside the drive root"):
        open_location(_local("escape"))


def test_a_symlinked_file_leading_outside_fails_the_run_and_reads_nothing(
    drive_root: Path, outside: Path, tmp_path: Path
) -> None:
    # given a folder under the root whose one file is a symlink to a file outside it
    folder = drive_root / "films"
    write_csv(folder / "a.csv", FILMS)
    (folder / "b.csv").symlink_to(outside / "secret.csv")
    key = drive_connection(_local(str(folder)))
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    # when
    execution = run(direct_job(key, target, sql="", target="films", json_data={}))
    # then
    assert execution.status == ExecutionStatus.FAILED
    assert "File 'b.csv' is outside the drive root" in execution.error_message
    assert committed_rows(target, "films") == []


def test_the_data_directory_is_refused_even_under_the_root(settings: LazySettings) -> None:
    # given a root that holds the gateway's data directory (an operator's broad choice)
    data = Path(settings.DATA_DIR)
    settings.GATEWAY_DRIVE_ROOT = str(data.parent)
    # when / then the data directory, its database and secrets are refused
    for path in (str(data), str(data / "stage"), str(data / "changelogs")):
        with pytest.raises(PathRefused, match="inside the gateway's data directory"):
            open_location(_local(path))
    # but its own drive folder is fine
    (data / "drive" / "in").mkdir(parents=True, exist_ok=True)
    open_location(_local(str(data / "drive" / "in")))


def test_a_symlink_to_the_gateway_database_is_refused(
    drive_root: Path, settings: LazySettings
) -> None:
    # given a symlink under the root pointing at the data directory's secret file
    folder = drive_root / "sneaky"
    folder.mkdir()
    secret = Path(settings.DATA_DIR) / "fernet.key"
    (folder / "keys.csv").symlink_to(secret)
    location = open_location(_local(str(folder)))
    # when / then listing refuses it by its real path
    with pytest.raises(PathRefused):
        location.list_files(subfolders=False, patterns=["*.csv"])


def test_a_writer_cannot_target_outside_the_root(drive_root: Path, tmp_path: Path) -> None:
    key = drive_connection(_local("out"))
    (drive_root / "out").mkdir()
    (drive_root / "out" / "link").symlink_to(tmp_path, target_is_directory=True)
    for target in ("../elsewhere/films.csv", "link/films.csv"):
        spec = WriterSpec.parse(
            {"JobKey": "w", "ConnectionString": key, "TargetObject": target, "SourceJobKey": "r"}
        )
        with pytest.raises(PathRefused):
            registry.open_writer(spec, "guid")


def test_a_drive_connection_check_lists_the_folder(drive_root: Path) -> None:
    write_csv(drive_root / "checked" / "a.csv", FILMS)
    key = drive_connection(_local("checked"))
    assert registry.check(registry.resolve(key)).endswith(": 1 file(s)")


def test_an_inline_drive_connection_string_is_refused(
    drive_root: Path, outside: Path, tmp_path: Path, settings: LazySettings
) -> None:
    # given a drive reader naming a folder inline instead of a stored connection, on a gateway
    # that even allows inline (database) connection strings
    settings.GATEWAY_INLINE_CONNECTIONS = True
    target_url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    job = direct_job(
        _local(str(outside)),
        target_url,
        sql="",
        target="films",
        json_data={"DriveSourceSettings": {"DriveFileFormat": "CSV"}},
    )
    # when
    execution = run(job)
    # then nothing is read: drive definitions name stored connections only
    assert execution.status == ExecutionStatus.FAILED
    assert "named by the key of a stored connection string" in execution.error_message
    assert committed_rows(target_url, "films") == []


@pytest.mark.parametrize("path", ["drive", "drive/incoming", "/drive/x", "drive\\x"])
def test_change_logs_are_never_kept_in_the_default_drive_root(tmp_path: Path, path: str) -> None:
    # a job Path mapping into <data dir>/drive would put its change logs where drive jobs
    # read and write files
    with pytest.raises(PathOutsideDataDir, match="drive jobs' folder"):
        job_folder(tmp_path, path)
    assert job_folder(tmp_path, "C:\\drive\\x") == (tmp_path / "drive_c" / "drive" / "x")

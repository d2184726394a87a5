"""Drive on an FTP site: pyftpdlib's server on a free loopback port, started here."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.models import ExecutionStatus
from jobs.systems.drive import check_value
from jobs.systems.drive.location import DriveError
from tests.drivefiles import FILMS, drive_connection, write_csv
from tests.processes import free_port
from tests.syncdb import direct_job, execute, rows, run

pytestmark = pytest.mark.django_db

ftp_servers = pytest.importorskip("pyftpdlib.servers", reason="pyftpdlib is a dev dependency")
ftp_handlers = pytest.importorskip("pyftpdlib.handlers")
ftp_authorizers = pytest.importorskip("pyftpdlib.authorizers")
PASSWORD = "s3cr3t-ftp"


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[dict[str, Any]]:
    home = tmp_path / "ftp-home"
    home.mkdir()
    authorizer = ftp_authorizers.DummyAuthorizer()
    authorizer.add_user("films", PASSWORD, str(home), perm="elradfmwMT")
    handler = type("Handler", (ftp_handlers.FTPHandler,), {"authorizer": authorizer})
    port = free_port()
    server = ftp_servers.ThreadedFTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    thread.start()
    try:
        yield {
            "home": home,
            "connection": {
                "service": "ftp",
                "host": "127.0.0.1",
                "port": port,
                "username": "films",
                "password": PASSWORD,
                "path": "/exports",
            },
        }
    finally:
        server.close_all()
        thread.join(5)


def test_an_ftp_folder_is_read_with_subfolders_and_updated_files_only(
    ftp: dict[str, Any], sqlite_url: str
) -> None:
    # given CSV files in an FTP folder and one of its subfolders
    write_csv(ftp["home"] / "exports" / "a.csv", FILMS[:2])
    write_csv(ftp["home"] / "exports" / "2007" / "b.csv", FILMS[2:])
    key = drive_connection(ftp["connection"], system="FTP Site")
    job = direct_job(
        key,
        sqlite_url,
        sql="",
        target="films",
        json_data={
            "DriveSourceSettings": {
                "DriveFilePattern": "*.csv",
                "DriveIncludeSubfolders": True,
                "DriveUpdatedFilesOnly": True,
                "DriveAddFolderColumn": True,
            }
        },
    )
    # when
    first = run(job)
    # then every file is read, with its folder
    assert first.status == ExecutionStatus.SUCCEEDED, first.error_message
    assert [(r[0], r[-1]) for r in rows(sqlite_url, "films")] == [
        (1, ""),
        (2, ""),
        (3, "2007"),
        (4, "2007"),
        (5, "2007"),
    ]
    # when one file changes (a row updated, two gone) and the other does not
    write_csv(ftp["home"] / "exports" / "2007" / "b.csv", [(3, "Changed", 2007, 1.0)])
    second = run(job)
    # then only that file is read again, and its changes reach the target
    assert second.status == ExecutionStatus.SUCCEEDED, second.error_message
    assert [(r[0], r[1]) for r in rows(sqlite_url, "films")] == [
        (1, FILMS[0][1]),
        (2, FILMS[1][1]),
        (3, "Changed"),
    ]
    assert second.record_count == 1 and second.delete_count == 2


def test_a_table_is_written_to_an_ftp_folder_under_a_hidden_name_then_renamed(
    ftp: dict[str, Any], sqlite_url: str
) -> None:
    # given a SQLite table and a drive target on the FTP site
    execute(sqlite_url, "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT)")
    execute(sqlite_url, "INSERT INTO films VALUES (1, 'One'), (2, 'Two')")
    key = drive_connection(ftp["connection"], system="FTP Site")
    job = direct_job(sqlite_url, key, sql="SELECT * FROM films", target="out/films.csv.gz")
    # when
    execution = run(job)
    # then one compressed file, named by ExecutionId, and no temporary file left
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error_message
    folder = ftp["home"] / "exports" / "out"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".datazen",
        f"films_{execution.execution_id}.csv.gz",
    ]
    text = gzip.decompress((folder / f"films_{execution.execution_id}.csv.gz").read_bytes())
    assert text.decode().splitlines() == ['"id","title"', '1,"One"', '2,"Two"']


def test_ftp_paths_stay_in_the_folder_and_a_bad_login_is_said_without_the_password(
    ftp: dict[str, Any],
) -> None:
    (ftp["home"] / "exports").mkdir()
    connection = ftp["connection"]
    assert check_value(json.dumps(connection)).startswith("FTP folder /exports on 127.0.0.1:")
    with pytest.raises(DriveError, match=r"contains '\.\.'"):
        check_value(json.dumps({**connection, "path": "/exports/../etc"}))
    with pytest.raises(DriveError, match="refused the login") as refused:
        check_value(json.dumps({**connection, "password": "wrong-password"}))
    assert "wrong-password" not in str(refused.value)
    assert PASSWORD not in str(refused.value)
